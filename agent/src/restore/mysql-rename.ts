import { Transform, type TransformCallback } from 'node:stream';
import { ColdsealError, EXIT } from '../errors';
import { sqlIdent } from '../db/mysql';

/**
 * A mysqldump file restored under another database name. Two kinds of statement name the
 * database:
 * - the dump's own DROP/CREATE/ALTER DATABASE and USE (`--databases`), which are rewritten whole;
 * - code that qualifies the database's own objects with its name: the server prints a view's
 *   function calls qualified even in the view's own database (`shop`.`with_tax`(…)), and the
 *   bodies of triggers, routines and events are kept as their author wrote them (call
 *   shop.note_it(…), `shop`.`items`). Restored under another name, those would reach into the
 *   original database, or fail where it does not exist ("FUNCTION shop.with_tax does not exist").
 *
 * Only identifiers are rewritten, never string literals or comments, and never table data: a
 * statement that starts with INSERT/REPLACE is passed through untouched without being parsed
 * (mysqldump escapes line breaks inside values, so such a statement ends at the first `;` that
 * ends a line), which keeps memory bounded whatever the size of a row. Every other statement is
 * small and is held whole, then tokenized:
 * - `name`.x(…) and `name`.x.y are the database's function or routine and a three-part column:
 *   rewritten;
 * - `name`.x alone may also be table-or-alias.column when a table or alias carries the
 *   database's name; it is rewritten unless the statement uses the name on its own somewhere
 *   (`from items shop`, `on shop`), in which case it is left as written.
 * Strings follow the statement's sql_mode as mysqldump sets it (ANSI_QUOTES: "…" is an
 * identifier; NO_BACKSLASH_ESCAPES: a backslash does not escape). Text inside literals (dynamic
 * SQL in PREPARE) is not rewritten.
 */
export class MysqlDumpRenamer extends Transform {
  private readonly core: DumpRenamer;
  constructor(original: string, target: string) {
    super();
    this.core = new DumpRenamer(original, target);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      for (const out of this.core.write(chunk)) this.push(out);
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      for (const out of this.core.end()) this.push(out);
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }
}

/** The same rewrite over a whole (small) script, e.g. definitions read back with mysqldump. */
export function renameInDump(script: string, original: string, target: string): string {
  const core = new DumpRenamer(original, target);
  return Buffer.concat([...core.write(Buffer.from(script, 'utf8')), ...core.end()]).toString('utf8');
}

/** A statement that is not table data and is larger than this is not from mysqldump. */
const MAX_STATEMENT_BYTES = 64 * 1024 * 1024;

/** Enough of a line to tell what it starts. */
const LINE_HEAD = 16;
/** Enough of a line's end to see a delimiter (DELIMITER takes any string; mysqldump uses ;;) and trailing blanks. */
const LINE_TAIL = 256;

const NEWLINE = 10;
const SEMICOLON = 59;

type Mode = 'boundary' | 'data' | 'statement' | 'comment-line';

interface SqlMode {
  readonly ansiQuotes: boolean;
  readonly noBackslashEscapes: boolean;
}

const DEFAULT_MODE: SqlMode = { ansiQuotes: false, noBackslashEscapes: false };

class DumpRenamer {
  /** Names as the latin1 string of their UTF-8 bytes: the script is handled byte for byte. */
  private readonly from: string;
  private readonly to: string;
  private mode: Mode = 'boundary';
  private held: Buffer[] = [];
  private heldBytes = 0;
  private delimiter = ';';
  private sqlMode: SqlMode = DEFAULT_MODE;
  private savedSqlMode: SqlMode = DEFAULT_MODE;
  /** Data mode: the previous chunk ended with ';' (the newline may start the next chunk). */
  private dataEndedWithSemicolon = false;
  /** The end of the current line of a statement, enough to see the delimiter. */
  private lineTail: Buffer = Buffer.alloc(0);

  constructor(original: string, target: string) {
    this.from = Buffer.from(original, 'utf8').toString('latin1');
    this.to = Buffer.from(sqlIdent(target), 'utf8').toString('latin1');
  }

  write(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let pos = 0;
    while (pos < chunk.length) {
      if (this.mode === 'data') {
        pos = this.passData(chunk, pos, out);
        continue;
      }
      if (this.mode === 'comment-line') {
        const nl = chunk.indexOf(NEWLINE, pos);
        const end = nl < 0 ? chunk.length : nl + 1;
        out.push(chunk.subarray(pos, end));
        pos = end;
        if (nl >= 0) this.mode = 'boundary';
        continue;
      }
      // Boundary or statement: take one line (or what there is of it).
      const nl = chunk.indexOf(NEWLINE, pos);
      const end = nl < 0 ? chunk.length : nl + 1;
      const part = chunk.subarray(pos, end);
      this.hold(part);
      this.lineTail = Buffer.concat([this.lineTail, part.subarray(-LINE_TAIL)]).subarray(-LINE_TAIL);
      pos = end;
      if (this.mode === 'boundary') {
        if (nl < 0 && this.heldBytes < LINE_HEAD) continue;
        if (!this.decideLine(out)) {
          this.lineTail = Buffer.alloc(0);
          continue;
        }
      }
      if (nl < 0) continue;
      // Only a line that ends with the delimiter can end the statement: the whole is looked at then.
      const ends = this.lineTail.toString('latin1').trimEnd().endsWith(this.delimiter);
      this.lineTail = Buffer.alloc(0);
      if (!ends) continue;
      const statement = this.heldText();
      if (endsStatement(statement, this.sqlMode)) {
        out.push(this.rewrite(statement));
        this.release();
        this.mode = 'boundary';
      }
    }
    return out;
  }

  end(): Buffer[] {
    if (!this.heldBytes) return [];
    const text = this.heldText();
    this.release();
    // A last line without its newline is still a statement unless it is a comment.
    const statement = this.mode === 'statement' || (this.mode === 'boundary' && !/^(--|#|\s*$|DELIMITER\s)/i.test(text));
    return [statement ? this.rewrite(text) : Buffer.from(text, 'latin1')];
  }

  private hold(part: Buffer): void {
    this.held.push(part);
    this.heldBytes += part.length;
    if (this.heldBytes > MAX_STATEMENT_BYTES) {
      const start = JSON.stringify(Buffer.concat(this.held.slice(0, 1)).subarray(0, 60).toString('utf8'));
      throw new ColdsealError(
        EXIT.INTEGRITY,
        `format check failed: the dump has a statement of more than ${MAX_STATEMENT_BYTES / 1024 / 1024} MiB that is not table data (it starts ${start}): not a mysqldump file?`,
        'Restore it with --output FILE and load it by hand',
      );
    }
  }

  private heldText(): string {
    return Buffer.concat(this.held).toString('latin1');
  }

  private release(): void {
    this.held = [];
    this.heldBytes = 0;
  }

  /** At the start of a line between statements: what kind of line is it? True when it starts a statement to hold. */
  private decideLine(out: Buffer[]): boolean {
    const head = this.heldText();
    const complete = head.endsWith('\n');
    if (/^(INSERT|REPLACE)\s/i.test(head)) {
      this.release();
      this.mode = 'data';
      this.dataEndedWithSemicolon = false;
      // Re-enter the held head through the data path (it may already hold the statement's end).
      const rest: Buffer[] = [];
      const buffer = Buffer.from(head, 'latin1');
      let pos = 0;
      // The head is at most one line, so the statement's end (`;` then a newline) is its end.
      while (pos < buffer.length && this.mode === 'data') pos = this.passData(buffer, pos, rest);
      out.push(...rest);
      return false;
    }
    if (/^(--|#)/.test(head) || /^\s*$/.test(head) || /^DELIMITER\s/i.test(head)) {
      if (!complete) {
        // A comment line longer than its head: pass it on as it comes.
        out.push(Buffer.from(head, 'latin1'));
        this.release();
        this.mode = 'comment-line';
        return false;
      }
      const delimiter = /^DELIMITER\s+(\S+)/i.exec(head);
      if (delimiter) this.delimiter = delimiter[1];
      out.push(Buffer.from(head, 'latin1'));
      this.release();
      return false;
    }
    this.mode = 'statement';
    return true;
  }

  /** Table data: passed on unparsed up to the `;` that ends a line. Returns the new position. */
  private passData(chunk: Buffer, pos: number, out: Buffer[]): number {
    if (this.dataEndedWithSemicolon && chunk[pos] === NEWLINE) {
      out.push(chunk.subarray(pos, pos + 1));
      this.endData();
      return pos + 1;
    }
    this.dataEndedWithSemicolon = false;
    let from = pos;
    for (;;) {
      const semicolon = chunk.indexOf(SEMICOLON, from);
      if (semicolon < 0) {
        out.push(chunk.subarray(pos));
        return chunk.length;
      }
      const next = semicolon + 1 < chunk.length ? chunk[semicolon + 1] : undefined;
      if (next === NEWLINE || (next === 13 && chunk[semicolon + 2] === NEWLINE)) {
        const end = semicolon + (next === NEWLINE ? 2 : 3);
        out.push(chunk.subarray(pos, end));
        this.endData();
        return end;
      }
      if (next === undefined) {
        out.push(chunk.subarray(pos));
        this.dataEndedWithSemicolon = true;
        return chunk.length;
      }
      from = semicolon + 1;
    }
  }

  private endData(): void {
    this.mode = 'boundary';
    this.dataEndedWithSemicolon = false;
  }

  /** One complete statement (not data): its database names and qualifiers rewritten. */
  private rewrite(statement: string): Buffer {
    const tokens = tokenize(statement, this.sqlMode);
    this.followSqlMode(tokens);
    const words = tokens.filter((t) => t.kind === 'word' || t.kind === 'ident');
    const keywords = words.slice(0, 4).map((t) => t.text.toUpperCase());
    const replace = new Set<Token>();
    if (keywords[0] === 'USE' || (['CREATE', 'DROP', 'ALTER'].includes(keywords[0]) && (keywords[1] === 'DATABASE' || keywords[1] === 'SCHEMA'))) {
      // The dump's own database statements: the first identifier that is the name (after IF [NOT] EXISTS).
      const name = words.find((t, i) => i > 0 && this.isName(t) && !/^(IF|NOT|EXISTS|DATABASE|SCHEMA)$/i.test(t.text));
      if (name) replace.add(name);
    } else {
      const code = tokens.filter((t) => t.kind !== 'space' && t.kind !== 'comment');
      const qualifiers: Array<{ token: Token; certain: boolean }> = [];
      let standalone = false;
      for (let i = 0; i < code.length; i++) {
        const token = code[i];
        if (!this.isName(token)) continue;
        const qualifies = code[i + 1]?.text === '.' && isIdentifier(code[i + 2]);
        if (!qualifies) {
          standalone = true;
          continue;
        }
        // x.name.y: name is a table there, not the database.
        if (code[i - 1]?.text === '.') continue;
        const after = code[i + 3]?.text;
        qualifiers.push({ token, certain: after === '(' || (after === '.' && isIdentifier(code[i + 4])) });
      }
      for (const q of qualifiers) if (q.certain || !standalone) replace.add(q.token);
    }
    if (!replace.size) return Buffer.from(statement, 'latin1');
    return Buffer.from(tokens.map((t) => (replace.has(t) ? this.to : t.text)).join(''), 'latin1');
  }

  private isName(token: Token | undefined): boolean {
    if (!token) return false;
    if (token.kind === 'word') return token.text === this.from && !NUMBER.test(token.text);
    if (token.kind === 'ident') return unquote(token.text) === this.from;
    return false;
  }

  /** mysqldump sets sql_mode before each routine, trigger and event, and puts the saved one back after. */
  private followSqlMode(tokens: readonly Token[]): void {
    const code = tokens.filter((t) => t.kind !== 'space' && t.kind !== 'comment');
    if (!code.some((t) => t.kind === 'word' && /^SET$/i.test(t.text))) return;
    for (let i = 0; i + 2 < code.length; i++) {
      if (!(code[i].kind === 'word' && /^sql_mode$/i.test(code[i].text) && code[i + 1].text === '=') || code[i - 1]?.text === '@') continue;
      const value = code[i + 2];
      if (value.kind === 'string') {
        this.savedSqlMode = this.sqlMode;
        const modes = unquote(value.text).toUpperCase().split(',');
        this.sqlMode = { ansiQuotes: modes.includes('ANSI_QUOTES') || modes.includes('ANSI'), noBackslashEscapes: modes.includes('NO_BACKSLASH_ESCAPES') };
      } else if (value.text === '@' && /^saved_sql_mode$/i.test(code[i + 3]?.text ?? '')) {
        this.sqlMode = this.savedSqlMode;
      } else {
        this.sqlMode = DEFAULT_MODE;
      }
    }
  }
}

// --- tokens ------------------------------------------------------------------------------------

type TokenKind = 'word' | 'ident' | 'string' | 'comment' | 'space' | 'other';

interface Token {
  readonly kind: TokenKind;
  readonly text: string;
  /** A string, identifier or block comment that the text ends inside. */
  readonly open?: boolean;
}

function isIdentifier(token: Token | undefined): boolean {
  return token !== undefined && (token.kind === 'word' || token.kind === 'ident');
}

/** `a``b` or "a""b" to a`b (latin1 string of bytes in, same out). */
function unquote(text: string): string {
  const quote = text[0];
  return text.slice(1, -1).split(quote + quote).join(quote);
}

const WORD = /[A-Za-z0-9_$\x80-\xff]/;
/** A bare word that MySQL reads as a number, never as a name (1, 1e5, 0x1F, 0b101). */
const NUMBER = /^(\d+|\d+[eE]\d*|0[xX][0-9a-fA-F]+|0[bB][01]+)$/;

/**
 * MySQL's lexical structure, as far as identifiers, strings and comments go. Executable comments
 * (`/*!50003 … *\/`, `/*M!100100 … *\/`) hold code: their markers are passed as "other" and their
 * content is tokenized. Text that does not close (a statement cut at the end) becomes one token.
 */
function tokenize(text: string, mode: SqlMode): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const push = (kind: TokenKind, end: number, open = false) => {
    tokens.push({ kind, text: text.slice(i, end), open });
    i = end;
  };
  while (i < text.length) {
    const c = text[i];
    if (c === '`' || (c === '"' && mode.ansiQuotes)) {
      const end = closeQuoted(text, i, c, false);
      push('ident', end < 0 ? text.length : end, end < 0);
    } else if (c === "'" || c === '"') {
      const end = closeQuoted(text, i, c, !mode.noBackslashEscapes);
      push('string', end < 0 ? text.length : end, end < 0);
    } else if (c === '/' && text[i + 1] === '*') {
      const executable = /^\/\*(M?!\d*)/.exec(text.slice(i, i + 16));
      if (executable) push('other', i + executable[0].length);
      else {
        const close = text.indexOf('*/', i + 2);
        push('comment', close < 0 ? text.length : close + 2, close < 0);
      }
    } else if (c === '#' || (c === '-' && text[i + 1] === '-' && (i + 2 >= text.length || /[\s]/.test(text[i + 2])))) {
      const nl = text.indexOf('\n', i);
      push('comment', nl < 0 ? text.length : nl);
    } else if (/\s/.test(c)) {
      let end = i + 1;
      while (end < text.length && /\s/.test(text[end])) end++;
      push('space', end);
    } else if (WORD.test(c)) {
      let end = i + 1;
      while (end < text.length && WORD.test(text[end])) end++;
      push('word', end);
    } else {
      push('other', i + 1);
    }
  }
  return tokens;
}

/** The end (exclusive) of a quoted token starting at `start`, -1 if it does not close; doubled quotes stay inside. */
function closeQuoted(text: string, start: number, quote: string, backslashEscapes: boolean): number {
  let i = start + 1;
  while (i < text.length) {
    const c = text[i];
    if (backslashEscapes && c === '\\') {
      i += 2;
      continue;
    }
    if (c === quote) {
      if (text[i + 1] === quote) {
        i += 2;
        continue;
      }
      return i + 1;
    }
    i++;
  }
  return -1;
}

/**
 * Whether held text (whole lines, the last ending with the delimiter) is a complete statement:
 * the delimiter is outside any string, identifier or comment, as the mysql client splits a script.
 */
function endsStatement(text: string, mode: SqlMode): boolean {
  const tokens = tokenize(text, mode);
  for (let i = tokens.length - 1; i >= 0; i--) {
    const token = tokens[i];
    if (token.kind === 'space') continue;
    // A line comment that ends with the delimiter hides it; a block comment ends with */.
    return !token.open && token.kind !== 'comment';
  }
  return false;
}
