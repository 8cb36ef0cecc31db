import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DumpPositionReader,
  MAX_HEAD_BYTES,
  parseDeferredGtid,
  parseDumpCoordinates,
  parseMysqlGtidPurged,
} from '../../agent/src/backup/sources/mysql-dump-position';
import { dumpPositionArgs, diagnoseMysql } from '../../agent/src/backup/sources/mysql';

/** The head and tail of `mariadb-dump --single-transaction --master-data=2 --gtid --databases shop` as 10.11.19 writes them. */
const MARIADB_HEAD = `/*M!999999\\- enable the sandbox mode */ 
-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)
--
-- Host: localhost    Database: shop
-- ------------------------------------------------------
-- Server version	10.11.19-MariaDB-0+deb12u1-log

/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!40101 SET NAMES utf8mb4 */;
/*!40111 SET @OLD_SQL_NOTES=@@SQL_NOTES, SQL_NOTES=0 */;
-- CHANGE MASTER TO MASTER_USE_GTID=slave_pos;

-- A corresponding to the above master-data CHANGE-MASTER settings to the slave gtid state is printed later in the file.

--
-- Alternately, following is the position of the binary logging from SHOW MASTER STATUS at point of backup.
-- Use this when creating a slave of the master server where the backup was made.
-- The new server will be connecting to the master server where the backup was taken.
--

-- CHANGE MASTER TO MASTER_LOG_FILE='mariadb-bin.000001', MASTER_LOG_POS=1232;

--
-- Current Database: \`shop\`
--

CREATE DATABASE /*!32312 IF NOT EXISTS*/ \`shop\` /*!40100 DEFAULT CHARACTER SET latin1 COLLATE latin1_swedish_ci */;

USE \`shop\`;
`;

const MARIADB_TAIL = `UNLOCK TABLES;

-- The deferred gtid setting for slave corresponding to the master-data CHANGE-MASTER follows

-- Preferably use GTID to start replication from GTID position:

-- SET GLOBAL gtid_slave_pos='1-1-9,0-1-5';
/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;

/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;
/*!40111 SET SQL_NOTES=@OLD_SQL_NOTES */;

-- Dump completed on 2026-12-06 10:54:16
`;

/** mysqldump 8.0.35 --single-transaction --source-data=2 of a server with GTIDs on (the set over two lines, as gtid_executed prints it). */
const MYSQL8_HEAD = `-- MySQL dump 10.13  Distrib 8.0.35, for Linux (x86_64)
--
-- Host: 127.0.0.1    Database: shop
-- ------------------------------------------------------
-- Server version	8.0.35

/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!50503 SET NAMES utf8mb4 */;
SET @MYSQLDUMP_TEMP_LOG_BIN = @@SESSION.SQL_LOG_BIN;
SET @@SESSION.SQL_LOG_BIN= 0;

--
-- GTID state at the beginning of the backup 
--

SET @@GLOBAL.GTID_PURGED=/*!80000 '+'*/ 'e519ec5c-afb2-11f0-808b-baf6ffc72915:1-224,
6b6cfbde-b07f-11f0-85fa-3a18d442e117:1-66:70-80';

--
-- Position to start replication or point-in-time recovery from
--

-- CHANGE REPLICATION SOURCE TO SOURCE_LOG_FILE='binlog.000002', SOURCE_LOG_POS=157;

--
-- Current Database: \`shop\`
--
`;

function feed(reader: DumpPositionReader, text: string, chunk: number): void {
  const bytes = Buffer.from(text, 'latin1');
  for (let i = 0; i < bytes.length; i += chunk) reader.push(bytes.subarray(i, i + chunk));
}

const BODY = "INSERT INTO `t` VALUES\n(1,'-- CHANGE MASTER TO MASTER_LOG_FILE=\\'evil-bin.000009\\', MASTER_LOG_POS=4;'),\n(2,'x');\n";

test('MariaDB 10.11: the coordinates from the head, the deferred GTID from the end, canonical; the same in any chunking', () => {
  for (const chunk of [1, 7, 4096, 1 << 20]) {
    const readAt = new Date('2026-12-06T10:54:16.123Z');
    const reader = new DumpPositionReader('mariadb', () => readAt);
    feed(reader, MARIADB_HEAD + BODY.repeat(50) + MARIADB_TAIL, chunk);
    assert.deepEqual(reader.result(), { file: 'mariadb-bin.000001', position: 1232, gtid: '0-1-5,1-1-9', flavor: 'mariadb', readAt }, `chunks of ${chunk}`);
  }
});

test('MariaDB: a GTID in the head (older mariadb-dump) is taken from there; an empty GTID position (nothing logged yet) is ""', () => {
  const head = MARIADB_HEAD.replace('-- A corresponding to the above master-data CHANGE-MASTER settings to the slave gtid state is printed later in the file.', "-- GTID to start replication from\n\n-- SET GLOBAL gtid_slave_pos='0-1-77';");
  const reader = new DumpPositionReader('mariadb');
  feed(reader, head + BODY + '-- Dump completed on 2026-12-06 10:54:16\n', 1000);
  assert.equal((reader.result() as { gtid: string }).gtid, '0-1-77');
  const empty = new DumpPositionReader('mariadb');
  feed(empty, MARIADB_HEAD + BODY + MARIADB_TAIL.replace("'1-1-9,0-1-5'", "''"), 1000);
  assert.equal((empty.result() as { gtid: string }).gtid, '');
});

test('MariaDB: a deferred GTID section is trusted only at the very end, after the last marker', () => {
  const routine = `DELIMITER ;;\nCREATE PROCEDURE p() BEGIN\n-- The deferred gtid setting for slave corresponding to the master-data CHANGE-MASTER follows\n-- SET GLOBAL gtid_slave_pos='9-9-999';\nSELECT 1; END ;;\nDELIMITER ;\n`;
  const reader = new DumpPositionReader('mariadb');
  feed(reader, MARIADB_HEAD + routine + BODY + MARIADB_TAIL, 333);
  assert.equal((reader.result() as { gtid: string }).gtid, '0-1-5,1-1-9', 'the real section, not the routine body');
  // No real section: the routine's copy is followed by dump content, not the footer.
  const forged = new DumpPositionReader('mariadb');
  feed(forged, MARIADB_HEAD + routine + BODY + '/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;\n-- Dump completed on 2026-12-06 10:54:16\n', 333);
  assert.match((forged.result() as Error).message, /surrounded by more than comments and the dump footer/);
  assert.match((parseDeferredGtid('-- Dump completed\n') as Error).message, /no deferred GTID section/);
  const truncated = new DumpPositionReader('mariadb');
  feed(truncated, MARIADB_HEAD + BODY, 100);
  assert.match((truncated.result() as Error).message, /its end has no deferred GTID section/);
});

test('MySQL 8: CHANGE REPLICATION SOURCE TO and a GTID_PURGED set over several lines, plain or COMMENTED; no GTID_PURGED means GTIDs off', () => {
  const reader = new DumpPositionReader('mysql');
  feed(reader, MYSQL8_HEAD + BODY + '-- Dump completed on 2026-12-06 10:54:16\n', 64);
  const result = reader.result();
  assert.ok(!(result instanceof Error), String(result));
  assert.equal(result.file, 'binlog.000002');
  assert.equal(result.position, 157);
  assert.equal(result.flavor, 'mysql');
  assert.equal(result.gtid, '6b6cfbde-b07f-11f0-85fa-3a18d442e117:1-66:70-80,e519ec5c-afb2-11f0-808b-baf6ffc72915:1-224');

  const commented = MYSQL8_HEAD.replace("SET @@GLOBAL.GTID_PURGED=/*!80000 '+'*/ 'e519ec5c-afb2-11f0-808b-baf6ffc72915:1-224,\n6b6c", "-- SET @@GLOBAL.GTID_PURGED=/*!80000 '+'*/ 'e519ec5c-afb2-11f0-808b-baf6ffc72915:1-224,\n-- 6b6c");
  assert.equal(parseMysqlGtidPurged(commented), 'e519ec5c-afb2-11f0-808b-baf6ffc72915:1-224,6b6cfbde-b07f-11f0-85fa-3a18d442e117:1-66:70-80');
  assert.equal(parseMysqlGtidPurged("SET @@GLOBAL.GTID_PURGED='26dea7e1-33ad-11e8-ae00-c6b02ede66d2:1-29';"), '26dea7e1-33ad-11e8-ae00-c6b02ede66d2:1-29');

  const noGtid = new DumpPositionReader('mysql');
  feed(noGtid, MYSQL8_HEAD.replace(/SET @@GLOBAL[^;]*;/, '').replace("CHANGE REPLICATION SOURCE TO SOURCE_LOG_FILE='binlog.000002', SOURCE_LOG_POS=157", "CHANGE MASTER TO MASTER_LOG_FILE='mysql-bin.000042', MASTER_LOG_POS=6889"), 4096);
  assert.deepEqual({ ...(noGtid.result() as object), readAt: undefined }, { file: 'mysql-bin.000042', position: 6889, gtid: '', flavor: 'mysql', readAt: undefined });
});

test('the coordinates are read from the head only: a dumped row quoting a CHANGE MASTER line never counts; none in the head is an error', () => {
  assert.equal(parseDumpCoordinates(BODY), null, 'quoted inside an INSERT, not at the start of a line');
  const reader = new DumpPositionReader('mariadb');
  feed(reader, MARIADB_HEAD.replace(/-- CHANGE MASTER TO MASTER_LOG_FILE.*\n/, '') + "-- CHANGE MASTER TO MASTER_LOG_FILE='evil-bin.000009', MASTER_LOG_POS=4;\n" + MARIADB_TAIL, 50);
  assert.match((reader.result() as Error).message, /head .* has no CHANGE MASTER TO/);
  assert.throws(() => parseDumpCoordinates("-- CHANGE MASTER TO MASTER_LOG_FILE='../x', MASTER_LOG_POS=4;"), /not a binary log file name/);
});

test('memory stays bounded: a head without the object marker stops at MAX_HEAD_BYTES, and 20 MB pass through', () => {
  const reader = new DumpPositionReader('mariadb');
  const filler = Buffer.alloc(1 << 20, 'x');
  for (let i = 0; i < 20; i++) reader.push(filler);
  const state = reader as unknown as { head: string; tail: Buffer };
  assert.ok(state.head.length <= MAX_HEAD_BYTES);
  assert.ok(state.tail.length <= 16 * 1024);
  assert.match((reader.result() as Error).message, /no CHANGE MASTER TO/);
});

test('dumpPositionArgs follows the dump tool: mariadb-dump --master-data=2 --gtid, mysqldump 8.0.26+ --source-data=2, older --master-data=2', () => {
  assert.deepEqual(dumpPositionArgs('mysqldump  Ver 10.19 Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)'), ['--master-data=2', '--gtid']);
  assert.deepEqual(dumpPositionArgs('mysqldump  Ver 8.0.35 for Linux on x86_64 (MySQL Community Server - GPL)'), ['--source-data=2']);
  assert.deepEqual(dumpPositionArgs('mysqldump  Ver 8.0.26 for Linux on x86_64'), ['--source-data=2']);
  assert.deepEqual(dumpPositionArgs('mysqldump  Ver 8.4.3 for Linux on x86_64'), ['--source-data=2']);
  assert.deepEqual(dumpPositionArgs('mysqldump  Ver 8.0.25 for Linux on x86_64'), ['--master-data=2']);
  assert.deepEqual(dumpPositionArgs('mysqldump  Ver 10.13 Distrib 5.7.44, for Linux (x86_64)'), ['--master-data=2']);
});

test('diagnoseMysql: a missing privilege and the binary log off say what to do, not "authentication failed"', () => {
  const reload = diagnoseMysql("mysqldump: Couldn't execute 'FLUSH TABLES WITH READ LOCK': Access denied; you need (at least one of) the RELOAD privilege(s) for this operation (1227)");
  assert.match(reload!.message, /lacks the RELOAD privilege/);
  assert.match(reload!.hint, /GRANT RELOAD ON \*\.\*/);
  const off = diagnoseMysql("mariadb-dump: Couldn't execute 'SELECT BINLOG_GTID_POS('', '0')': You are not using binary logging (1381)");
  assert.match(off!.message, /binary log is off/);
  assert.match(off!.hint, /pitr setup/);
});
