import { withAbortOutcome } from './abort-upload';
import { spawn, type ChildProcess } from 'node:child_process';
import { pipeline, Transform } from 'node:stream';
import type { PutObjectCommandInput, S3Client } from '@aws-sdk/client-s3';
import type { CiphertextDigest } from '../../../../runtime/digest';
import type { Segment } from '../../../../format/manifest';
import { ColdsealError, EXIT } from '../../errors';
import type { Log } from '../../log';
import type { ArtifactFacts, DumpStep, StepCompanion } from '../sources/source';
import { startCompressor, type CompressionChoice } from '../../pipeline/compression';
import { onInterrupt } from '../../interrupt';
import { keepTail, lastLines } from '../../process-output';
import { startEncryption, type Encryptor, type RunningEncryption } from '../../pipeline/encrypt';
import { MultipartWriter } from './multipart';
import type { SizePlan } from './size-plan';
import { ByteCounter, TailWatcher } from '../../pipeline/streams';

/**
 * One artifact: dump tool → compressor → OpenPGP → SHA-256 → S3 multipart upload, one stream, no
 * temporary file. The upload completes only after the dump tool and the compressor have exited
 * cleanly, the completion check has passed, and `commit` has resolved (all artifacts of the source
 * are good). Anything else aborts the multipart upload, so no truncated object is ever left.
 */
export interface ArtifactTarget {
  readonly s3: S3Client;
  readonly bucket: string;
  readonly key: string;
  /** Part size, parts per segment, buffers. */
  readonly plan: SizePlan;
  /** Headers for the object: SSE, storage class, tags, Object Lock. */
  readonly objectParams: Omit<PutObjectCommandInput, 'Bucket' | 'Key' | 'Body'>;
}

export interface DumpOutcome {
  readonly startedAt: Date;
  readonly finishedAt: Date;
  readonly exitCode: number;
  readonly warnings: string[];
  readonly uncompressedBytes: number | null;
  readonly compressedBytes: number;
  readonly completionDetail: string;
  /** What the step's companion recorded (a base backup's LSNs and label). */
  readonly facts?: ArtifactFacts;
}

export interface ArtifactResult extends DumpOutcome {
  readonly digest: CiphertextDigest;
  /** The objects holding the ciphertext, in order (one unless the dump outgrew one upload). */
  readonly segments: Segment[];
}

export interface RunningArtifact {
  /** Settles when the dump's bytes have all been read and checked (before the upload completes). */
  readonly dumped: Promise<DumpOutcome>;
  /** Settles when the object exists in S3 (or the upload was aborted). */
  readonly stored: Promise<ArtifactResult>;
}

interface ProcessEnd {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly spawnError?: Error;
}

function waitForExit(child: ChildProcess): Promise<ProcessEnd> {
  return new Promise((resolve) => {
    let spawnError: Error | undefined;
    child.once('error', (error) => {
      spawnError = error;
      if (child.exitCode === null && child.pid === undefined) resolve({ code: null, signal: null, spawnError });
    });
    child.once('close', (code, signal) => resolve({ code, signal, spawnError }));
  });
}

function terminate(child: ChildProcess | undefined): void {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  setTimeout(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }, 5000).unref();
}

/**
 * Starts the dump tool. Node throws (instead of emitting "error") when the kernel refuses the
 * command line as too long (E2BIG: Linux allows 128 KiB per argument and about 2 MiB in all),
 * which would otherwise surface as exit 1, "a bug"; it is the configuration that asks too much.
 */
function spawnDumpTool(step: DumpStep, label: string): ChildProcess {
  let child: ChildProcess;
  try {
    child = spawn(step.command, [...step.args], { env: { ...process.env, ...step.env }, stdio: [step.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'E2BIG') throw error;
    const bytes = step.args.reduce((sum, arg) => sum + Buffer.byteLength(arg) + 1, 0);
    throw new ColdsealError(
      EXIT.CONFIG,
      `source ${label}: the ${step.tool.name} command is too long for a command line (${step.args.length} arguments, ${bytes} bytes; the system allows about 2 MiB, 128 KiB for one argument)`,
      'Use fewer or shorter excludes (a pattern instead of a list), or split the source into several sources',
      { cause: error },
    );
  }
  if (step.stdin !== undefined) {
    // The tool may exit before reading everything (a missing path, a kill): its exit says why, not EPIPE.
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(step.stdin);
  }
  return child;
}

export function startArtifact(options: {
  step: DumpStep;
  label: string;
  compression: CompressionChoice;
  encryptor: Encryptor;
  target: ArtifactTarget;
  commit: Promise<void>;
  log: Log;
  /** Opened by the caller before this starts the tool; settled here at the end of the output. */
  companion?: StepCompanion;
}): RunningArtifact {
  const { step, compression, target, log, companion } = options;
  const startedAt = new Date();
  const needsPlaintextInNode = step.completion.method === 'marker' || compression.runsIn === 'node' || companion !== undefined;

  const dump = spawnDumpTool(step, options.label);
  const dumpStderr = keepTail(dump.stderr!, 8192);
  const dumpEnd = waitForExit(dump);

  const watcher = needsPlaintextInNode ? new TailWatcher() : undefined;
  const compressor = startCompressor(compression, needsPlaintextInNode ? undefined : dump.stdout!);
  const compressorEnd = compressor.child ? waitForExit(compressor.child) : Promise.resolve<ProcessEnd>({ code: 0, signal: null });
  // zstd's stdout goes straight into gpg's stdin: compressed bytes need not pass through Node either
  // (zstd reports their count); openpgp.js (or gzip in zlib) takes them through Node, counted on the way.
  const direct = compressor.child !== undefined && options.encryptor.kind === 'gpg';
  const compressedCounter = direct ? undefined : new ByteCounter();
  let encryption: RunningEncryption | undefined;
  // The exit is watched from the spawn on: gpg may be gone before its stdout's end reaches the gate.
  let encryptorEnd: Promise<ProcessEnd> = Promise.resolve({ code: 0, signal: null });
  const encryptionStarted = startEncryption(options.encryptor, direct ? compressor.output : compressor.output.pipe(compressedCounter!), { direct }).then((running) => {
    encryption = running;
    if (running.child) encryptorEnd = waitForExit(running.child);
    return running;
  });
  encryptionStarted.catch(() => undefined);
  const compressedBytes = () => compressedCounter?.bytes ?? compressor.compressedBytes();

  let failure: ColdsealError | undefined;
  const fail = (error: ColdsealError) => {
    failure ??= error;
    terminate(dump);
    terminate(compressor.child);
    terminate(encryption?.child);
  };
  // In Node the compressor has no exit status: its stream's error is the failure (pipe() would not
  // pass it on, and the encryption would wait for an end that never comes).
  if (!compressor.child) {
    compressor.output.once('error', (error) => {
      fail(new ColdsealError(EXIT.FAILURE, `the compressor failed (${compression.implementation}) for ${step.name}: ${error.message}`, 'Check free memory, or set compression.algorithm to "gzip"'));
      compressedCounter?.destroy(error);
    });
  }
  const stopListening = onInterrupt((signal) =>
    fail(new ColdsealError(EXIT.INTERRUPTED, `backup interrupted by ${signal} while dumping ${step.name}`, 'Nothing of this run was committed; if an SSM timeout sent it, raise the document\'s executionTimeout')),
  );

  const plaintextDone = new Promise<void>((resolve) => {
    if (!watcher) return resolve();
    // A companion sees the plaintext on its way (a base backup reads its backup_label from the tar).
    const tap = companion && new Transform({ transform: (chunk: Buffer, _encoding, done) => (companion.observe(chunk), done(null, chunk)) });
    pipeline([dump.stdout!, watcher, ...(tap ? [tap] : []), compressor.input!], (error) => {
      // A write error here is a consequence (the compressor died); the exit statuses say why.
      if (error && !failure) log.debug('plaintext stream ended with an error', { artifact: step.name, error: error.message });
      resolve();
    });
  });

  let resolveDumped!: (outcome: DumpOutcome) => void;
  let rejectDumped!: (error: Error) => void;
  const dumped = new Promise<DumpOutcome>((resolve, reject) => {
    resolveDumped = resolve;
    rejectDumped = reject;
  });
  dumped.catch(() => undefined);

  /** Runs at the very end of the ciphertext: decides whether this artifact may complete. */
  const judge = async (): Promise<void> => {
    const running = await encryptionStarted;
    const [dumpExit, compressorExit, encryptorExit] = await Promise.all([dumpEnd, compressorEnd, encryptorEnd, plaintextDone, running.inputDone]);
    if (failure) throw failure;
    if (encryptorExit.spawnError || encryptorExit.signal || encryptorExit.code !== 0) {
      throw new ColdsealError(EXIT.FAILURE, `gpg failed to encrypt ${step.name} (${encryptorExit.signal ?? encryptorExit.code ?? encryptorExit.spawnError?.message}): ${lastLines(running.stderrTail(), 2)}`, 'Set encryption.implementation to "openpgp.js" to encrypt without gpg');
    }
    const compressed = compressedBytes();
    if (compressed === undefined) {
      throw new ColdsealError(EXIT.FAILURE, `zstd did not report how many bytes it wrote for ${step.name}: ${lastLines(compressor.stderrTail(), 2)}`, 'Check the zstd installation (zstd -vv prints a summary line), or set compression.algorithm to "gzip"');
    }
    const outcome = checkOutcome(step, dumpExit, dumpStderr(), compressorExit, compressor.stderrTail(), watcher, compressor.uncompressedBytes(), compressed);
    if (outcome instanceof ColdsealError) throw outcome;
    // The tool's output is complete and good; what the companion still needs (a base backup's WAL
    // reaching the archive) decides too, while the upload waits open.
    const facts = companion ? await companion.settle({ stderr: dumpStderr() }) : undefined;
    if (failure) throw failure;
    const result: DumpOutcome = { ...outcome, startedAt, finishedAt: new Date(), compressedBytes: compressed, ...(facts ? { facts } : {}) };
    resolveDumped(result);
    await options.commit;
  };
  const writer = new MultipartWriter({ target, plan: target.plan, beforeComplete: judge });

  const progressTimer = setInterval(() => {
    log.progress({ label: options.label, bytes: writer.bytes, elapsedSeconds: (Date.now() - startedAt.getTime()) / 1000, detail: watcher ? `${(watcher.bytes / 1048576).toFixed(0)} MiB dumped` : undefined });
  }, 1000);
  progressTimer.unref();

  const stored = (async (): Promise<ArtifactResult> => {
    const { output: encrypted } = await encryptionStarted;
    // The writer completes the objects only after the gate (judge) has passed; any error on either
    // side stops the other: a failed part fails the stream (which kills the dump), a failed dump fails the writer.
    await new Promise<void>((resolve, reject) => pipeline(encrypted, writer, (error) => (error ? reject(error) : resolve())));
    const outcome = await dumped;
    return { ...outcome, ...writer.outcome };
  })();

  const storedSettled = stored.catch(async (error: Error) => {
    if (!failure) {
      if (error instanceof ColdsealError) fail(error);
      else fail(classifyUploadError(error, target));
    }
    compressor.output.destroy();
    writer.destroy();
    // The message says what became of the incomplete upload: aborted, or left to the lifecycle rule.
    failure = await withAbortOutcome(failure!, () => writer.abort());
    rejectDumped(failure);
    throw failure;
  });
  storedSettled.catch(() => undefined).finally(() => {
    stopListening();
    clearInterval(progressTimer);
    log.endProgress();
  });

  return { dumped, stored: storedSettled };
}

const EMPTY_ZSTD_FRAME_MAX = 13;

function checkOutcome(
  step: DumpStep,
  dumpExit: ProcessEnd,
  dumpStderr: string,
  compressorExit: ProcessEnd,
  compressorStderr: string,
  watcher: TailWatcher | undefined,
  reportedUncompressed: number | undefined,
  compressedBytes: number,
): Omit<DumpOutcome, 'startedAt' | 'finishedAt' | 'compressedBytes'> | ColdsealError {
  const tool = step.tool.name;
  if (dumpExit.spawnError) {
    const missing = (dumpExit.spawnError as NodeJS.ErrnoException).code === 'ENOENT';
    return new ColdsealError(EXIT.SOURCE, `${tool} could not be started: ${dumpExit.spawnError.message}`, missing ? 'Install the client tools on the host, or set the source\'s binDir' : undefined);
  }
  if (dumpExit.signal) {
    return new ColdsealError(EXIT.SOURCE, `${tool} was killed by ${dumpExit.signal} before it finished ${step.name}`, dumpExit.signal === 'SIGKILL' ? 'Check the host for the out-of-memory killer (dmesg) or an operator kill, then run the backup again' : 'Run the backup again');
  }
  const warnings: string[] = [];
  if (dumpExit.code !== 0) {
    const tolerated = step.tolerableExitCodes?.get(dumpExit.code ?? -1);
    if (!tolerated) {
      const known = step.diagnose?.(dumpStderr);
      if (known) return new ColdsealError(EXIT.SOURCE, `${tool} failed for ${step.name}: ${known.message}`, known.hint);
      const detail = lastLines(dumpStderr, 3).slice(0, 500);
      return new ColdsealError(EXIT.SOURCE, `${tool} exited with status ${dumpExit.code} for ${step.name}${detail ? `: ${detail}` : ''}`, 'Read the tool\'s message above; run the same dump by hand to reproduce');
    }
    warnings.push(tolerated);
  }
  if (compressorExit.spawnError || compressorExit.signal || compressorExit.code !== 0) {
    return new ColdsealError(EXIT.FAILURE, `the compressor failed (${compressorExit.signal ?? compressorExit.code ?? compressorExit.spawnError?.message}): ${lastLines(compressorStderr, 2)}`, 'Check free memory and the zstd installation');
  }
  const uncompressed = watcher ? watcher.bytes : reportedUncompressed;
  // Should a zstd release word its report differently, an empty frame (≤ 13 bytes) still gives an empty dump away.
  if (uncompressed === 0 || (uncompressed === undefined && compressedBytes <= EMPTY_ZSTD_FRAME_MAX)) {
    return new ColdsealError(EXIT.SOURCE, `${tool} produced no data for ${step.name} (0 bytes) although it reported success`, 'A dump cannot be empty: check the tool, its permissions and the source definition');
  }
  let completionDetail: string;
  switch (step.completion.method) {
    case 'marker': {
      const tail = watcher?.tailText() ?? '';
      if (!tail.includes(step.completion.marker)) {
        return new ColdsealError(EXIT.SOURCE, `${tool} output for ${step.name} ends without its completion line "${step.completion.marker}": the dump is truncated`, 'Check the tool\'s messages; the database may have dropped the connection');
      }
      completionDetail = `trailer "${step.completion.marker}" present`;
      break;
    }
    case 'archive-end':
      completionDetail = `${tool} exited with status ${dumpExit.code} after writing the end-of-archive record`;
      break;
    default:
      completionDetail = `${tool} exited with status 0`;
  }
  return { exitCode: dumpExit.code ?? 0, warnings, uncompressedBytes: uncompressed ?? null, completionDetail };
}

function classifyUploadError(error: Error, target: ArtifactTarget): ColdsealError {
  const name = (error as { name?: string }).name ?? '';
  if (name === 'PreconditionFailed' || /PreconditionFailed|At least one of the pre-conditions/.test(error.message)) {
    return new ColdsealError(EXIT.STORAGE, `s3://${target.bucket}/${target.key} already exists; backups are never overwritten`, 'Another run wrote the same stamp: wait a second and run again');
  }
  if (name === 'CredentialsProviderError') {
    return new ColdsealError(EXIT.STORAGE, `no AWS credentials for the upload to s3://${target.bucket}/${target.key}`, 'On EC2 attach an instance profile with the coldseal instance policy; elsewhere set AWS_PROFILE or the AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY environment');
  }
  if (name === 'AccessDenied' || /Access Denied/i.test(error.message)) {
    return new ColdsealError(EXIT.STORAGE, `S3 refused the upload to s3://${target.bucket}/${target.key}: ${error.message}`, 'Attach the coldseal instance policy of this group to the host\'s role');
  }
  return new ColdsealError(EXIT.STORAGE, `upload to s3://${target.bucket}/${target.key} failed: ${error.message}`, 'Check network access to S3 and the bucket name/region', { cause: error });
}
