import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CreateBucketCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { generateKeyPair } from '../format/pgp';
import { startMoto } from '../test/harness/services';

/**
 * npm run quickstart [-- --database NAME]
 *
 * The main job on local defaults: backs up a local PostgreSQL database (a small sample one unless
 * you name yours) into an S3 bucket of a moto_server this command starts on loopback, with keys it
 * generates, using the real agent CLI. Prints where the backup went and how to read it back with
 * gpg alone. Nothing touches AWS.
 */
const root = join(__dirname, '..');
const work = join(root, '.tmp', 'quickstart');

function option(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function psql(database: string, sql: string): string {
  return execFileSync('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', database, '-Atqc', sql]).toString().trim();
}

async function main(): Promise<number> {
  let database = option('--database');
  try {
    psql('postgres', 'select 1');
  } catch {
    console.error('PostgreSQL does not answer on 127.0.0.1:5432 as user postgres. Start it (pg_ctlcluster <version> main start) and run again.');
    return 1;
  }
  if (!database) {
    database = 'coldseal_sample';
    if (psql('postgres', `select count(*) from pg_database where datname = '${database}'`) === '0') {
      psql('postgres', `create database ${database}`);
      psql(database, `create table customers (id serial primary key, name text, joined date default current_date);
                      insert into customers (name) select 'customer ' || g from generate_series(1, 10000) g;
                      create table orders (id serial primary key, customer_id int references customers, total numeric(10,2));
                      insert into orders (customer_id, total) select 1 + g % 10000, g % 977 from generate_series(1, 50000) g;`);
      console.log(`created the sample database ${database}`);
    }
  }

  mkdirSync(work, { recursive: true });
  const recipient = await generateKeyPair({ name: 'quickstart recipient' });
  const signing = await generateKeyPair({ name: 'quickstart signing' });
  writeFileSync(join(work, 'recipient.key.asc'), recipient.privateKey, { mode: 0o600 });
  writeFileSync(join(work, 'recipient.pub.asc'), recipient.publicKey);
  writeFileSync(join(work, 'signing.key.asc'), signing.privateKey, { mode: 0o600 });

  const moto = await startMoto();
  try {
    const credentials = { accessKeyId: 'quickstart', secretAccessKey: 'quickstart' };
    const s3 = new S3Client({ endpoint: moto.endpoint, forcePathStyle: true, region: 'us-east-1', credentials });
    await s3.send(new CreateBucketCommand({ Bucket: 'coldseal-quickstart' }));
    const configFile = join(work, 'config.json');
    writeFileSync(
      configFile,
      JSON.stringify(
        {
          group: 'quickstart',
          host: 'localhost',
          bucket: 'coldseal-quickstart',
          endpoint: moto.endpoint,
          recipients: { file: join(work, 'recipient.pub.asc') },
          signingKey: { file: join(work, 'signing.key.asc') },
          sources: [{ name: 'postgres', type: 'postgres', databases: [database], host: '127.0.0.1', user: 'postgres' }],
        },
        null,
        2,
      ),
    );
    console.log(`moto_server (a local stand-in for S3) on ${moto.endpoint}; configuration ${configFile}\n`);
    const run = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'agent', 'src', 'cli.ts'), 'backup', '--config', configFile], {
      stdio: 'inherit',
      env: { ...process.env, AWS_ACCESS_KEY_ID: credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey, AWS_REGION: 'us-east-1', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    });
    if (run.status !== 0) {
      console.error(`\nthe backup failed (exit ${run.status}); see the message above`);
      return run.status ?? 1;
    }
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: 'coldseal-quickstart' }));
    console.log('\nThe backup went to:');
    for (const object of listed.Contents ?? []) console.log(`  s3://coldseal-quickstart/${object.Key}  (${object.Size} bytes)`);
    const artifact = listed.Contents?.find((o) => o.Key?.endsWith('.pgp'))?.Key;
    console.log(`\nRead it back without coldseal (gpg, zstd and pg_restore alone; against real S3, drop --endpoint-url):
  gpg --import ${join(work, 'recipient.key.asc')}
  aws s3 cp --endpoint-url ${moto.endpoint} s3://coldseal-quickstart/${artifact} - | gpg --decrypt | zstd -d | pg_restore -l
Keys and configuration are in ${work}. moto keeps objects in memory: they are gone when this command ends.`);
    return 0;
  } finally {
    await moto.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error((error as Error).message);
    process.exit(1);
  },
);
