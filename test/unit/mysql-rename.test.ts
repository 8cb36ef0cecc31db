import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MysqlDumpRenamer, renameInDump } from '../../agent/src/restore/mysql-rename';

/**
 * The rewrite of a mysqldump file for another database name, statement by statement as mysqldump
 * writes them (restore-mysql-objects.test.ts runs it against the real server). The stream gives the
 * same bytes however it is cut, and passes table data on as it comes.
 */
const dump = [
  '/*M!999999\\- enable the sandbox mode */ ',
  '-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, Database: shop',
  '/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE=\'NO_AUTO_VALUE_ON_ZERO\' */;',
  '/*!40000 DROP DATABASE IF EXISTS `shop`*/;',
  'CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop` /*!40100 DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci */;',
  'USE `shop`;',
  'CREATE TABLE `items` (',
  "  `id` int(11) NOT NULL COMMENT 'shop.items; `shop`.x',",
  '  PRIMARY KEY (`id`)',
  ') ENGINE=InnoDB;',
  'INSERT INTO `items` VALUES',
  "(1,'USE `shop`;\\nCREATE DATABASE `shop`;'),",
  "(2,'call shop.note_it(1); `shop`.`with_tax`(2)');",
  "INSERT INTO `items` VALUES (3,'shop.x;'),(4,'it\\'s `shop`.y');",
  'DELIMITER ;;',
  "/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 trigger t after insert on items for each row begin call shop.note_it('shop.x'); /* shop.items */ call `shop`.note_it(`shop`.with_tax(new.id)); end ",
  '*/;;',
  'DELIMITER ;',
  "/*!50003 SET sql_mode              = 'NO_BACKSLASH_ESCAPES,ANSI_QUOTES' */ ;",
  'DELIMITER ;;',
  'CREATE DEFINER=`root`@`localhost` PROCEDURE `p`()',
  'begin',
  "  select 'C:\\' into @path; -- shop.items",
  '  select "shop".with_tax(1), shop.items.id, other.shop.id from "shop".items;',
  'end ;;',
  // A table alias named like the database: shop.id is alias.column; only the function call is the database's.
  'CREATE DEFINER=`root`@`localhost` PROCEDURE `q`()',
  'select count(*) from items shop where shop.id > 0 and shop.with_tax(shop.id) > 0 ;;',
  'DELIMITER ;',
  '/*!50003 SET sql_mode              = @saved_sql_mode */ ;',
  "/*!50001 VIEW `v` AS select `shop`.`with_tax`(`i`.`id`) AS `g`,'shop.with_tax' AS `l` from `items` `i` */;",
  'ALTER DATABASE `shop` CHARACTER SET latin1 ;',
  '-- Dump completed on 2026-12-06',
  '',
].join('\n');

const expected = dump
  .replace('DROP DATABASE IF EXISTS `shop`', 'DROP DATABASE IF EXISTS `copy`')
  .replace('NOT EXISTS*/ `shop`', 'NOT EXISTS*/ `copy`')
  .replace('USE `shop`;\nCREATE TABLE', 'USE `copy`;\nCREATE TABLE')
  .replace("begin call shop.note_it('shop.x'); /* shop.items */ call `shop`.note_it(`shop`.with_tax(new.id)); end", "begin call `copy`.note_it('shop.x'); /* shop.items */ call `copy`.note_it(`copy`.with_tax(new.id)); end")
  .replace('select "shop".with_tax(1), shop.items.id, other.shop.id from "shop".items;', 'select `copy`.with_tax(1), `copy`.items.id, other.shop.id from `copy`.items;')
  .replace('shop.id > 0 and shop.with_tax(shop.id) > 0', 'shop.id > 0 and `copy`.with_tax(shop.id) > 0')
  .replace('AS select `shop`.`with_tax`(`i`.`id`)', 'AS select `copy`.`with_tax`(`i`.`id`)')
  .replace('ALTER DATABASE `shop` CHARACTER', 'ALTER DATABASE `copy` CHARACTER');

async function streamed(text: string, chunkSize: number): Promise<string> {
  const renamer = new MysqlDumpRenamer('shop', 'copy');
  const out: Buffer[] = [];
  renamer.on('data', (d: Buffer) => out.push(d));
  const done = new Promise((resolve, reject) => (renamer.on('end', resolve), renamer.on('error', reject)));
  const bytes = Buffer.from(text, 'utf8');
  for (let i = 0; i < bytes.length; i += chunkSize) renamer.write(bytes.subarray(i, i + chunkSize));
  renamer.end();
  await done;
  return Buffer.concat(out).toString('utf8');
}

test('only code that names its own database is rewritten: not literals, comments, table data, aliases or another database\'s table', () => {
  assert.equal(renameInDump(dump, 'shop', 'copy'), expected);
});

test('the stream gives the same bytes however it is cut', async () => {
  for (const size of [1, 2, 3, 7, 16, 17, 64, 1000, dump.length]) assert.equal(await streamed(dump, size), expected, `chunks of ${size}`);
});

test('a name that needs quoting, a name that is a number, non-ASCII names', () => {
  assert.equal(renameInDump('USE `shop`;\nselect `shop`.f(1);\n', 'shop', 'a `b` c'), 'USE `a ``b`` c`;\nselect `a ``b`` c`.f(1);\n');
  // A database named 1: the number in 1.2 is not it.
  assert.equal(renameInDump('select p * 1.2, `1`.f(1);\n', '1', 'copy'), 'select p * 1.2, `copy`.f(1);\n');
  assert.equal(renameInDump('select `läden`.f(1), läden.g(2);\n', 'läden', 'größe'), 'select `größe`.f(1), `größe`.g(2);\n');
});

test('table data passes through as it comes, without waiting for the end of its statement', async () => {
  const renamer = new MysqlDumpRenamer('shop', 'copy');
  let out = 0;
  renamer.on('data', (d: Buffer) => (out += d.length));
  renamer.write(Buffer.from("INSERT INTO `t` VALUES (1,'"));
  const row = Buffer.alloc(1024 * 1024, 'x');
  for (let i = 0; i < 32; i++) renamer.write(row);
  await new Promise((resolve) => setImmediate(resolve));
  assert.ok(out >= 32 * row.length, `${out} bytes out before the row ended`);
  renamer.end(Buffer.from("');\nUSE `shop`;\n"));
  await new Promise((resolve) => renamer.on('end', resolve));
});

test('a short last statement without its newline is still rewritten', () => {
  assert.equal(renameInDump('USE `shop`;', 'shop', 'copy'), 'USE `copy`;');
});
