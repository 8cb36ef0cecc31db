import { z } from 'zod';
import { bucketNameSchema, nameSchema, TIERS } from './layout';
import { DEFAULT_PARAMETER_PREFIX } from './parameters';

/**
 * The agent's configuration: one file per host, or one SSM parameter per group (the stack writes
 * it). It holds no secret: passwords and the signing key are named by parameter or file, and read
 * at run time.
 */

const name = nameSchema;

/** Object Lock modes S3 offers. */
export const LOCK_MODES = ['GOVERNANCE', 'COMPLIANCE'] as const;
export type LockMode = (typeof LOCK_MODES)[number];

/** One tier's Object Lock retention: the mode and how many days each object stays locked. */
export const objectLockSchema = z.object({ mode: z.enum(LOCK_MODES), days: z.number().int().min(1).max(36500) }).strict();
export type ObjectLock = z.infer<typeof objectLockSchema>;

/** Where a secret lives. Never the secret itself. */
export const secretRefSchema = z.union([
  z.object({ parameter: z.string().min(1).describe('SSM SecureString parameter name') }).strict(),
  z.object({ file: z.string().min(1).describe('local file readable only by root (0600)') }).strict(),
]);
export type SecretRef = z.infer<typeof secretRefSchema>;

/** Where public keys live: inline armored text is fine since public keys are not secrets. */
export const publicKeysRefSchema = z.union([
  z.object({ parameter: z.string().min(1) }).strict(),
  z.object({ file: z.string().min(1) }).strict(),
  z.object({ armored: z.string().min(1) }).strict(),
]);
export type PublicKeysRef = z.infer<typeof publicKeysRefSchema>;

const runAs = z
  .string()
  .regex(/^[a-z_][a-z0-9_-]*$/, 'must be a local user name')
  .optional()
  .describe('run the dump tool as this local user (peer authentication); the agent must run as root');

const binDir = z
  .string()
  .regex(/^\//, 'must be an absolute path')
  .optional()
  .describe('directory of the client tools to use (e.g. /usr/lib/postgresql/16/bin): the dump tool must be at least as new as the server');

const inventory = z
  .boolean()
  .default(true)
  .describe('count the rows of every table at backup time (for verify --deep and drills); costs one full scan of each table');

const databases = z.union([z.literal('all'), z.array(z.string().min(1)).min(1)]);

/**
 * Point-in-time recovery of a PostgreSQL source: continuous WAL archive (PostgreSQL's
 * archive_command runs `coldseal pitr archive-push`) and physical base backups on the source's
 * schedule, beside its logical dumps.
 */
export const postgresPitrSchema = z
  .object({
    enabled: z.boolean().default(false),
    /** PostgreSQL's archive_timeout, set by `pitr setup`: the recovery point on a quiet server. */
    archiveTimeoutSeconds: z.number().int().min(1).max(3600).default(60),
    /** WAL files one archive-push call uploads at most: the one PostgreSQL asked for, then the oldest other .ready files. */
    pushAhead: z.number().int().min(1).max(256).default(32),
    /** Uploads in flight in one archive-push or WAL fetches in one prefetch. */
    concurrency: z.number().int().min(1).max(32).default(8),
    /** WAL files restore_command keeps verified and decrypted ahead of recovery. */
    prefetch: z.number().int().min(0).max(256).default(16),
    /** Take a physical base backup (pg_basebackup) with every scheduled run of the source. */
    baseBackup: z.boolean().default(true),
    /** How long a base backup waits for its last WAL segment to reach the archive before it fails. */
    waitForArchiveMinutes: z.number().int().min(1).max(240).default(10),
  })
  .strict();
export type PostgresPitrConfig = z.infer<typeof postgresPitrSchema>;

const postgresSource = z
  .object({
    name,
    type: z.literal('postgres'),
    databases: databases.default('all'),
    /** Cluster-wide roles and tablespaces (pg_dumpall --globals-only); default on when databases is "all". */
    globals: z.boolean().optional(),
    host: z.string().optional().describe('host name, IP or socket directory; omit for the default socket'),
    port: z.number().int().min(1).max(65535).default(5432),
    user: z.string().optional(),
    password: secretRefSchema.optional(),
    runAs,
    binDir,
    inventory,
    excludeTables: z.array(z.string()).default([]),
    /** Databases never dumped when databases is "all". */
    excludeDatabases: z.array(z.string()).default([]),
    pitr: postgresPitrSchema.optional(),
  })
  .strict();

/**
 * Point-in-time recovery of a MySQL/MariaDB source: closed binary logs pushed to the vault on a
 * short timer (`coldseal pitr binlog-push`, run by the systemd timer that `pitr setup --apply`
 * installs: FLUSH BINARY LOGS, then every closed file not yet archived), and the binary log
 * position of each dump's snapshot in its manifest. The recovery point is about one interval plus
 * the upload: a quiet server still rotates, so the archive proves it is current.
 *
 * Why push and not a streaming `mariadb-binlog --read-from-remote-server --stop-never`: a stream
 * gets events to the host within a second, but the vault only sees whole closed files (an object
 * is written once), so it moves the recovery point only if the partial file is uploaded again and
 * again; and it is a process SSM Run Command cannot keep alive, which does not reconnect by itself.
 */
export const mysqlPitrSchema = z
  .object({
    enabled: z.boolean().default(false),
    /** Minutes between binlog-push runs (the timer): the recovery point on a busy or a quiet server. */
    intervalMinutes: z.number().int().min(1).max(60).default(5),
    /**
     * Where the agent reads closed binary logs: "files" from the server's binlog directory (the
     * agent runs on the database host and can read it; no replication privilege), or "server"
     * over the client protocol (mariadb-binlog --read-from-remote-server --raw; needs REPLICATION
     * SLAVE, works from another host).
     */
    read: z.enum(['files', 'server']).default('files'),
    /** The binlog directory when the agent cannot ask the server (default: the directory of @@log_bin_basename). */
    binlogDir: z.string().regex(/^\//, 'must be an absolute path').optional(),
    /** Uploads in flight in one binlog-push, or binary logs fetched ahead in one restore. */
    concurrency: z.number().int().min(1).max(16).default(4),
  })
  .strict();
export type MysqlPitrConfig = z.infer<typeof mysqlPitrSchema>;

const mysqlSource = z
  .object({
    name,
    type: z.literal('mysql'),
    databases: databases.default('all'),
    host: z.string().optional(),
    port: z.number().int().min(1).max(65535).default(3306),
    socket: z.string().optional(),
    user: z.string().optional(),
    password: secretRefSchema.optional(),
    runAs,
    binDir,
    inventory,
    excludeDatabases: z.array(z.string()).default([]),
    pitr: mysqlPitrSchema.optional(),
  })
  .strict();

/** Kernel pseudo-files: reading some never ends (/proc/kmsg, /dev/zero) and none are data worth restoring. */
const VIRTUAL_FILE_SYSTEM = /^\/+(?:proc|sys|dev)(?:\/|$)/;

const filesSource = z
  .object({
    name,
    type: z.literal('files'),
    paths: z
      .array(
        z
          .string()
          .regex(/^\//, 'must be an absolute path')
          .refine((path) => !VIRTUAL_FILE_SYSTEM.test(path), {
            error: (issue) => `${String(issue.input)} is on a virtual file system (/proc, /sys, /dev): tar can block forever reading it (/proc/kmsg) or archive gigabytes that are not files; list the real directories to back up`,
          }),
      )
      .min(1),
    excludes: z.array(z.string()).default([]),
    runAs,
  })
  .strict();

export const sourceSchema = z.discriminatedUnion('type', [postgresSource, mysqlSource, filesSource]);
export type SourceConfig = z.infer<typeof sourceSchema>;
export type PostgresSourceConfig = z.infer<typeof postgresSource>;
export type MysqlSourceConfig = z.infer<typeof mysqlSource>;
export type FilesSourceConfig = z.infer<typeof filesSource>;

/** The time zone of schedules and calendars when none is set. */
export const DEFAULT_TIME_ZONE = 'UTC';

const weekdays = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'] as const;

export const calendarSchema = z
  .object({
    /** IANA time zone the calendar day is taken in (a 01:00 run in Europe/Paris is still "that" day). */
    timeZone: z.string().default(DEFAULT_TIME_ZONE),
    yearly: z.object({ month: z.number().int().min(1).max(12), day: z.number().int().min(1).max(31) }).strict().nullable().default({ month: 1, day: 1 }),
    monthly: z.object({ day: z.number().int().min(1).max(28) }).strict().nullable().default({ day: 1 }),
    weekly: z.object({ weekday: z.enum(weekdays) }).strict().nullable().default({ weekday: 'sunday' }),
  })
  .strict()
  .superRefine((value, ctx) => {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: value.timeZone });
    } catch {
      ctx.addIssue({ code: 'custom', path: ['timeZone'], message: `"${value.timeZone}" is not an IANA time zone (e.g. "UTC", "Europe/Paris")` });
    }
  });
export type CalendarConfig = z.infer<typeof calendarSchema>;

export const agentConfigSchema = z
  .object({
    group: name,
    /** Defaults to the first label of the OS host name. */
    host: name.optional(),
    bucket: bucketNameSchema,
    region: z.string().default('us-east-1'),
    /** For S3-compatible or local endpoints (tests, moto). Path-style addressing is used with it. */
    endpoint: z.url().optional(),
    /** Prefix of the group's SSM parameters. */
    parameterPrefix: z.string().default(DEFAULT_PARAMETER_PREFIX),
    recipients: publicKeysRefSchema,
    signingKey: secretRefSchema,
    /** SNS topic for failure alerts; omit to alert only through the exit status and logs. */
    alertTopicArn: z.string().regex(/^arn:aws[a-z-]*:sns:/, 'must be an SNS topic ARN').optional(),
    compression: z
      .object({
        /** auto: the zstd binary when on PATH, else Node's own zstd when this Node's zlib has it (the self-contained agent's does), else gzip (Node's zlib). zstd: either zstd engine. */
        algorithm: z.enum(['auto', 'zstd', 'gzip']).default('auto'),
        level: z.number().int().min(1).max(19).optional(),
        /** zstd worker threads of the zstd binary; 0 = one per core (Node's zstd runs one). */
        threads: z.number().int().min(0).max(64).default(0),
      })
      .strict()
      .default({ algorithm: 'auto', threads: 0 }),
    encryption: z
      .object({
        /** auto: the gpg binary when the host has it (faster on small hosts), else openpgp.js in process. */
        implementation: z.enum(['auto', 'gpg', 'openpgp.js']).default('auto'),
      })
      .strict()
      .default({ implementation: 'auto' }),
    upload: z
      .object({
        /** Fixed part size; default: 8 MiB, larger for a large database (part buffers stay under 128 MiB in all). */
        partSizeMiB: z.number().int().min(5).max(5120).optional(),
        /** Parts in flight at once; the writer holds queueSize + 1 part buffers. */
        queueSize: z.number().int().min(1).max(16).default(2),
        /** Parts per segment object: default (and at most) S3's 10,000; fewer only to see segments on small dumps. */
        segmentParts: z.number().int().min(1).max(10_000).optional(),
        storageClass: z.enum(['STANDARD', 'STANDARD_IA', 'INTELLIGENT_TIERING']).default('STANDARD'),
        /** KMS key for SSE-KMS; omit for the bucket's default encryption. */
        kmsKeyId: z.string().optional(),
      })
      .strict()
      .default({ queueSize: 2, storageClass: 'STANDARD' }),
    /**
     * Object Lock retention the agent sets on each object it writes, per tier. The stack fills it
     * from its retention settings; omit a tier to rely on the bucket's default (if any).
     */
    objectLock: z
      .partialRecord(z.enum(TIERS), objectLockSchema)
      .default({}),
    calendar: calendarSchema.default({ timeZone: DEFAULT_TIME_ZONE, yearly: { month: 1, day: 1 }, monthly: { day: 1 }, weekly: { weekday: 'sunday' } }),
    sources: z.array(sourceSchema).min(1, 'at least one source is needed'),
  })
  .strict()
  .superRefine((value, ctx) => {
    const seen = new Set<string>();
    value.sources.forEach((source, index) => {
      if (seen.has(source.name)) ctx.addIssue({ code: 'custom', path: ['sources', index, 'name'], message: `source name "${source.name}" is used twice` });
      seen.add(source.name);
    });
  });

export type AgentConfig = z.infer<typeof agentConfigSchema>;
export type AgentConfigInput = z.input<typeof agentConfigSchema>;
export const WEEKDAYS = weekdays;
