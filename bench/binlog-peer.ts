import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchWork } from './common';

/**
 * The peers the binary log bench sets coldseal against, as people run them without coldseal:
 *
 * - Archiving: the script a hand-made cron job runs (the usual blog-post recipe): FLUSH BINARY
 *   LOGS, then every closed file not yet sent, oldest first, through `gzip -6 | gpg --encrypt |
 *   aws s3 cp -` (one AWS CLI call per file), remembering the last file sent in a state file. No
 *   signature, no checksum, no record of GTIDs: less work than coldseal does per file.
 * - Replay: `mariadb-binlog --start-position=<dump's position> <the local files> | mariadb` into a
 *   database loaded from a plain `mariadb-dump --single-transaction --master-data=2 --gtid`
 *   (https://mariadb.com/kb/en/mariadb-binlog/, "Using mariadb-binlog for point-in-time recovery"),
 *   with `--rewrite-db` for the new name: what the MariaDB docs tell a user to type, with the files
 *   already on local disk (no download, no decryption, no verification).
 */
export const PEER_ARCHIVER = 'cron script: FLUSH BINARY LOGS; each closed file: gzip -6 | gpg --encrypt | aws s3 cp - (AWS CLI, one call a file)';
export const PEER_REPLAY = 'mariadb-binlog --start-position=P --rewrite-db=shop->new <local files> | mariadb';

export interface PeerArchiver {
  /** The script to run once per timer tick. */
  readonly script: string;
  /** The key prefix it writes to. */
  readonly prefix: string;
  /** Where it keeps the last file it sent. */
  readonly stateFile: string;
  /** The object key of a binary log file. */
  key(file: string): string;
}

export function writePeerArchiver(work: BenchWork, options: { socket: string; binlogDir: string; endpoint: string; bucket: string; name: string }): PeerArchiver {
  const script = join(work.dir, `${options.name}.sh`);
  const stateFile = join(work.dir, `${options.name}.last`);
  const prefix = `${options.name}/`;
  writeFileSync(stateFile, '');
  writeFileSync(
    script,
    `#!/bin/bash
# A hand-made binary log archiver, as cron runs it every few minutes.
set -euo pipefail
sql() { mariadb --no-defaults -uroot --socket=${options.socket} --batch --skip-column-names -e "$1"; }
sql 'FLUSH BINARY LOGS'
current=$(sql 'SHOW MASTER STATUS' | cut -f1)
last=$(cat ${stateFile})
for file in $(sql 'SHOW BINARY LOGS' | cut -f1); do
  [[ "$file" == "$current" ]] && break
  [[ -n "$last" && ! "$file" > "$last" ]] && continue
  gzip -6 -c ${options.binlogDir}/$file \\
    | gpg --homedir ${work.gpgHome} --batch --quiet --trust-model always --compress-algo none -r ${work.recipient.fingerprint} --encrypt \\
    | aws --endpoint-url ${options.endpoint} s3 cp - s3://${options.bucket}/${prefix}$file.gz.gpg
  echo "$file" > ${stateFile}
done
`,
  );
  chmodSync(script, 0o755);
  return { script, prefix, stateFile, key: (file) => `${prefix}${file}.gz.gpg` };
}

/** The peer's replay pipeline as one bash command line. */
export function peerReplayCommand(options: { files: readonly string[]; startPosition: number; from: string; to: string; port: number }): string {
  return `mariadb-binlog --no-defaults --start-position=${options.startPosition} --rewrite-db='${options.from}->${options.to}' ${options.files.join(' ')} | mariadb --no-defaults -uroot -h127.0.0.1 -P${options.port} ${options.to}`;
}

/** The dump's binary log coordinates, from the comment `--master-data=2` writes at its head. */
export function dumpPosition(head: string): { file: string; position: number } {
  const m = /CHANGE MASTER TO MASTER_LOG_FILE='([^']+)', MASTER_LOG_POS=(\d+)/.exec(head);
  if (!m) throw new Error('the peer dump has no CHANGE MASTER TO comment (mariadb-dump --master-data=2 writes one)');
  return { file: m[1], position: Number(m[2]) };
}
