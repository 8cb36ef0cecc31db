import { join } from 'node:path';
import type { AgentConfigInput, MysqlPitrConfig } from '../../format/agent-config';
import { createAlertInbox, type AlertInbox } from '../../local-system/alerts';
import { createAgentSandbox, type AgentSandbox, type CliResult } from './agent';
import { startMariadbServer, type MariadbServer, type MariadbServerOptions } from './mariadb-server';

/**
 * A MySQL/MariaDB PITR source for tests: a scratch MariaDB with binary logging (ROW, server_id 1),
 * an agent sandbox in its own moto account whose configuration has one `mysql` source "shop"
 * (database shop) with pitr enabled, reading the binary logs from the files, and the CLI run from
 * source. The server's root has no password; the agent connects over the scratch socket.
 */
export interface BinlogSource {
  readonly sandbox: AgentSandbox;
  readonly server: MariadbServer;
  readonly config: AgentConfigInput;
  readonly configPath: string;
  /** The source's name in the configuration. */
  readonly name: string;
  /** Runs the CLI with `--config <configPath>` appended. */
  cli(args: string[], env?: Record<string, string>): Promise<CliResult>;
  /** SQL in database shop. */
  sql(sql: string): string;
  /** FLUSH BINARY LOGS; returns the name of the file that was closed. */
  flush(): string;
  /** The server's clock, ISO 8601 with milliseconds (for --to-time targets between two writes). */
  serverTime(): string;
  /** binlog-push's state directory for this source (what --state-dir push() passes). */
  readonly stateDir: string;
  /** `coldseal pitr binlog-push --source shop --state-dir <stateDir>` (plus `args`), as the timer runs it. */
  push(args?: string[], env?: Record<string, string>, signal?: Parameters<AgentSandbox['runCli']>[2]): Promise<CliResult>;
  /** The SNS topic's inbox when started with `alerts: true` (alertTopicArn is in the configuration). */
  readonly inbox?: AlertInbox;
  close(): Promise<void>;
}

export interface BinlogSourceOptions {
  readonly server?: MariadbServerOptions;
  readonly pitr?: Partial<MysqlPitrConfig>;
  /** Databases the source dumps (default ["shop"]). */
  readonly databases?: string[];
  /** An SNS topic (alertTopicArn) with an SQS inbox to read the alerts from. */
  readonly alerts?: boolean;
  /** Other configuration settings (e.g. endpoint through an S3 proxy). */
  readonly config?: Partial<AgentConfigInput>;
  /** Other settings of the source (e.g. user and password of a less privileged account). */
  readonly source?: Record<string, unknown>;
}

export async function startBinlogSource(options: BinlogSourceOptions = {}): Promise<BinlogSource> {
  const sandbox = await createAgentSandbox();
  const server = await startMariadbServer(options.server);
  server.sql('CREATE DATABASE shop');
  const name = 'shop';
  const inbox = options.alerts ? await createAlertInbox(sandbox.account, { waitSeconds: 3 }) : undefined;
  const config = sandbox.config({
    ...(inbox ? { alertTopicArn: inbox.topicArn } : {}),
    ...options.config,
    sources: [
      {
        name,
        type: 'mysql',
        databases: options.databases ?? ['shop'],
        socket: server.socket,
        user: 'root',
        pitr: { enabled: true, ...options.pitr },
        ...options.source,
      },
    ],
  });
  const configPath = sandbox.writeConfig(config);
  const stateDir = join(sandbox.dir, 'binlog-state');
  const cli = (args: string[], env?: Record<string, string>, signal?: Parameters<AgentSandbox['runCli']>[2]) => sandbox.runCli([...args, '--config', configPath], env, signal);
  return {
    sandbox,
    server,
    config,
    configPath,
    name,
    cli: (args, env) => cli(args, env),
    stateDir,
    push: (args = [], env, signal) => cli(['pitr', 'binlog-push', '--source', name, '--state-dir', stateDir, ...args], env, signal),
    inbox,
    sql: (sql) => server.sql(sql, 'shop'),
    flush() {
      const closed = server.sql('SHOW MASTER STATUS').split('\t')[0];
      server.sql('FLUSH BINARY LOGS');
      return closed;
    },
    serverTime: () => new Date(server.sql("SELECT DATE_FORMAT(UTC_TIMESTAMP(3), '%Y-%m-%dT%H:%i:%s.%fZ')").replace(/(\.\d{3})\d*Z$/, '$1Z')).toISOString(),
    async close() {
      await server.stop();
    },
  };
}
