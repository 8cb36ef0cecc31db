import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EXIT } from '../../format/exit-codes';
import { startPitrSource, type PitrSource } from '../harness/pitr-source';

/**
 * A source laid out as Debian does it: postgresql.conf, pg_hba.conf and pg_ident.conf outside the
 * data directory, so the base backup has none. The restore writes minimal ones (the hot standby
 * settings pg_control requires, local connections only), says so, and the copy starts with them.
 */
let pitr: PitrSource;

before(async () => {
  pitr = await startPitrSource({ configOutsideDataDir: true });
  pitr.cluster.psql('postgres', 'alter system set max_connections = 150');
  pitr.cluster.restart();
  for (const id of [1, 2]) pitr.writeRow(id);
  await pitr.waitArchived();
});

after(() => pitr?.close());

test('no configuration in the base backup: minimal files written and said; the copy recovers with them', async () => {
  assert.equal(existsSync(join(pitr.cluster.dataDir, 'postgresql.conf')), false);
  const r = await pitr.restore('debian', '--to-latest');
  assert.equal(r.result.code, EXIT.OK, r.result.log);
  assert.match(r.result.stdout, /wrote a minimal postgresql\.conf, pg_hba\.conf, pg_ident\.conf \(the backup had none/);
  assert.match(readFileSync(join(r.dataDir, 'pg_hba.conf'), 'utf8'), /^local +all +all +peer$/m);
  assert.doesNotMatch(readFileSync(join(r.dataDir, 'pg_hba.conf'), 'utf8'), /trust/);
  // The settings pg_control recorded at the base backup; the WAL raised max_connections after it,
  // which would pause a hot standby: recovery runs without one (hot_standby = off) and promotes.
  assert.match(readFileSync(join(r.dataDir, 'postgresql.conf'), 'utf8'), /^max_connections = 100$/m);
  // Peer authentication: as the postgres OS user, over the socket in the spool directory.
  const psql = (sql: string) => execFileSync('runuser', ['-u', 'postgres', '--', 'psql', '-h', `${r.dataDir}.coldseal-spool`, '-p', r.port!, '-d', 'postgres', '-X', '-Atqc', sql]).toString().trim();
  assert.equal(psql('select id from t order by id'), '1\n2');
  assert.equal(psql('show max_connections'), '100');
});
