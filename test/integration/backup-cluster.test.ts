import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readPublicKeys } from '../../runtime/pgp';
import { openManifest } from '../../runtime/signed-document';
import { EXIT } from '../../format/exit-codes';
import { createAgentSandbox, type AgentSandbox } from '../harness/agent';
import { decompress, gpgDecrypt } from '../harness/gpg';
import { startPgCluster, type PgCluster } from '../harness/pg-cluster';

/** "databases": "all" on a cluster of its own: every database that accepts connections, plus roles. */
let cluster: PgCluster;
let sandbox: AgentSandbox;

before(async () => {
  sandbox = await createAgentSandbox();
  cluster = await startPgCluster();
  cluster.psql('postgres', `create role app_owner login password 'not-in-any-log'`);
  for (const db of ['"Sales.DB" owner app_owner', 'inventory', 'scratch']) cluster.psql('postgres', `create database ${db}`);
  cluster.psql('Sales.DB', 'create table t (id int); insert into t values (1), (2)');
  cluster.psql('inventory', 'create table items (sku text); insert into items values (\'a\')');
});

after(() => cluster?.stop());

test('all databases of a cluster, minus the excluded, plus globals; odd names survive the key layout', async () => {
  const config = sandbox.config({
    sources: [{ name: 'cluster', type: 'postgres', databases: 'all', host: cluster.socketDir, port: cluster.port, user: 'postgres', excludeDatabases: ['scratch'] }],
  });
  const result = await sandbox.runCli(['backup', '--config', sandbox.writeConfig(config), '--tier', 'daily']);
  assert.equal(result.code, EXIT.OK, result.log);
  const manifestKey = (await sandbox.listKeys('backups/daily/testgroup/testhost/cluster/')).find((k) => k.endsWith('.manifest.json'))!;
  const { document } = await openManifest((await sandbox.getObject(manifestKey)).toString(), await readPublicKeys(sandbox.signing.publicKey, 's'));
  assert.deepEqual(document.artifacts.map((a) => a.name), ['globals', 'Sales.DB', 'inventory', 'postgres']);
  assert.match(document.artifacts[1].key, /\.Sales%2EDB\.pgdump\.zst\.pgp$/);
  const globals = document.artifacts[0];
  const sql = decompress(gpgDecrypt(await sandbox.getObject(globals.key), sandbox.recipient.privateFile), 'zstd').toString();
  assert.match(sql, /CREATE ROLE app_owner;/);
  assert.match(sql, /PostgreSQL database cluster dump complete/);
  assert.doesNotMatch(result.stderr + result.stdout, /not-in-any-log/);
});

test('a database dropped after the listing is skipped with a warning, not a failed backup', async () => {
  cluster.psql('postgres', 'create database zz_temp');
  // A pg_dump that, while dumping "inventory", has someone drop zz_temp, whose turn comes later.
  const bin = join(sandbox.dir, 'bin-dropper');
  mkdirSync(bin);
  for (const tool of ['psql', 'pg_dumpall']) symlinkSync(`/usr/bin/${tool}`, join(bin, tool));
  writeFileSync(
    join(bin, 'pg_dump'),
    '#!/bin/sh\nif [ "$1" = --version ]; then exec /usr/bin/pg_dump --version; fi\nif [ "$PGDATABASE" = inventory ]; then psql -X -d postgres -Atqc "drop database zz_temp" >&2; fi\nexec /usr/bin/pg_dump "$@"\n',
  );
  chmodSync(join(bin, 'pg_dump'), 0o755);
  const config = sandbox.config({
    sources: [{ name: 'shrinking', type: 'postgres', databases: 'all', host: cluster.socketDir, port: cluster.port, user: 'postgres', binDir: bin, excludeDatabases: ['scratch'] }],
  });
  const result = await sandbox.runCli(['backup', '--config', sandbox.writeConfig(config), '--tier', 'daily']);
  assert.equal(result.code, EXIT.OK, result.log);
  assert.match(result.log, /database zz_temp of source shrinking was dropped after the databases were listed; skipped/);
  const manifestKey = (await sandbox.listKeys('backups/daily/testgroup/testhost/shrinking/')).find((k) => k.endsWith('.manifest.json'))!;
  const { document } = await openManifest((await sandbox.getObject(manifestKey)).toString(), await readPublicKeys(sandbox.signing.publicKey, 's'));
  assert.deepEqual(document.artifacts.map((a) => a.name), ['globals', 'Sales.DB', 'inventory', 'postgres']);
});
