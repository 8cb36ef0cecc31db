import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { mysqlCommand, type MysqlConnection } from '../../db/mysql';
import { ColdsealError, EXIT } from '../../errors';
import { MissingToolError } from '../../host-tools';
import { keepTail, lastLines } from '../../process-output';

/**
 * `"read": "server"`: one closed binary log copied over the client protocol, byte for byte, by
 * the server's own tool (MariaDB KB "mariadb-binlog Options": --read-from-remote-server --raw
 * writes the events as the server sends them, into <result-file prefix><file name>; MySQL
 * "mysqlbinlog — Using mysqlbinlog to Back Up Binary Log Files"). Without --stop-never it stops
 * at the end of the named file. It needs REPLICATION SLAVE (MariaDB ≥ 10.5: REPLICATION SLAVE
 * too) and works from another host. The copy is spooled beside the state, one file per upload in
 * flight, and removed once uploaded: the same scan then checks it as it would the server's file.
 */
export function binlogTool(serverVersion: string): string {
  return /mariadb/i.test(serverVersion) ? 'mariadb-binlog' : 'mysqlbinlog';
}

export async function fetchBinlogFromServer(conn: MysqlConnection, tool: string, file: string, dir: string, signal?: AbortSignal): Promise<string> {
  const { command, args } = mysqlCommand(conn, tool, ['--read-from-remote-server', '--raw', `--result-file=${dir}/`, file]);
  await new Promise<void>((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'], signal });
    const stderr = keepTail(child.stderr, 4096);
    child.once('error', (error) =>
      reject((error as NodeJS.ErrnoException).code === 'ENOENT' ? new MissingToolError(`copying ${file} from the server`, { tool: command }) : new ColdsealError(EXIT.SOURCE, `${tool} could not start: ${error.message}`, `Install the client tools (${tool}) or set the source's binDir`)),
    );
    child.once('close', (code, sig) => {
      if (code === 0) resolve();
      else
        reject(
          new ColdsealError(
            EXIT.SOURCE,
            `${tool} --read-from-remote-server could not copy ${file} (${sig ?? `status ${code}`}): ${lastLines(stderr(), 2)}`,
            /denied|privilege/i.test(stderr()) ? 'Grant the source\'s user REPLICATION SLAVE (pitr setup says how), or set "read": "files"' : 'Check that the server still has the file (SHOW BINARY LOGS) and that the source\'s connection works',
          ),
        );
    });
  });
  return join(dir, file);
}
