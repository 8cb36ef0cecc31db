import { createConnection, type Connection } from 'mysql2/promise';
import type { MariadbServer } from '../test/harness/mariadb-server';

/**
 * The write workload the binary log bench makes on its scratch MariaDB: a shop, as an OLTP
 * application writes it (sysbench's oltp_write_only is the model), from several connections at
 * once, each transaction sent as one multi-statement round trip so the server, not the client's
 * latency, sets the pace:
 * - 60 % new order: an order, 1–5 lines, the stock of each product, the customer's balance and an
 *   audit row with a JSON payload;
 * - 30 % payment: an order's status and the customer's balance;
 * - 9 % tidy-up: a few old audit rows deleted;
 * - 1 % batch: 200 orders' status in one UPDATE (a back-office job: one large row event).
 * With binlog_format=ROW and full row images, each transaction logs about 1–3 KB (the batch ~60 KB).
 */
export const SHOP = 'shop';
export const SHOP_TABLES = ['customers', 'products', 'orders', 'order_items', 'audit', 'probe'] as const;

const SEED_CUSTOMERS = 200_000;
const SEED_PRODUCTS = 20_000;
const SEED_ORDERS = 200_000;

export function createShop(server: MariadbServer): void {
  server.sql(`CREATE DATABASE IF NOT EXISTS ${SHOP}`);
  server.sql(
    `CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL, email VARCHAR(128) NOT NULL, balance DECIMAL(12,2) NOT NULL, updated_at DATETIME(6) NOT NULL, note VARCHAR(255) NOT NULL) ENGINE=InnoDB;
     CREATE TABLE products (id INT PRIMARY KEY, sku CHAR(12) NOT NULL, name VARCHAR(128) NOT NULL, price DECIMAL(10,2) NOT NULL, stock INT NOT NULL, updated_at DATETIME(6) NOT NULL) ENGINE=InnoDB;
     CREATE TABLE orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, customer_id INT NOT NULL, status VARCHAR(16) NOT NULL, total DECIMAL(12,2) NOT NULL, created_at DATETIME(6) NOT NULL, shipping_address VARCHAR(255) NOT NULL, KEY (customer_id)) ENGINE=InnoDB;
     CREATE TABLE order_items (order_id BIGINT NOT NULL, line TINYINT NOT NULL, product_id INT NOT NULL, qty INT NOT NULL, price DECIMAL(10,2) NOT NULL, PRIMARY KEY (order_id, line)) ENGINE=InnoDB;
     CREATE TABLE audit (id BIGINT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6) NOT NULL, kind VARCHAR(32) NOT NULL, payload TEXT NOT NULL) ENGINE=InnoDB;
     CREATE TABLE probe (id BIGINT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6) NOT NULL) ENGINE=InnoDB;
     INSERT INTO customers SELECT seq, CONCAT('customer ', seq), CONCAT('c', seq, '@example.com'), 100, NOW(6), REPEAT(MD5(seq), 3) FROM seq_1_to_${SEED_CUSTOMERS};
     INSERT INTO products SELECT seq, LPAD(seq, 12, '0'), CONCAT('product ', seq, ' ', MD5(seq)), 1 + seq % 500, 1000000, NOW(6) FROM seq_1_to_${SEED_PRODUCTS};
     INSERT INTO orders SELECT seq, 1 + seq % ${SEED_CUSTOMERS}, 'shipped', seq % 1000, NOW(6), CONCAT(seq, ' Main Street, ', MD5(seq)) FROM seq_1_to_${SEED_ORDERS};`,
    SHOP,
  );
}

const rnd = (n: number) => Math.floor(Math.random() * n);
const money = (n: number) => (Math.random() * n).toFixed(2);

function newOrder(): string {
  const customer = 1 + rnd(SEED_CUSTOMERS);
  const lines = 1 + rnd(5);
  const parts = [
    'START TRANSACTION',
    `INSERT INTO orders (customer_id, status, total, created_at, shipping_address) VALUES (${customer}, 'new', ${money(500)}, NOW(6), '${rnd(9999)} Elm Road, flat ${rnd(99)}, ${Math.random().toString(36).slice(2)}')`,
    'SET @o = LAST_INSERT_ID()',
  ];
  for (let line = 1; line <= lines; line++) {
    const product = 1 + rnd(SEED_PRODUCTS);
    const qty = 1 + rnd(4);
    parts.push(`INSERT INTO order_items VALUES (@o, ${line}, ${product}, ${qty}, ${money(100)})`);
    parts.push(`UPDATE products SET stock = stock - ${qty}, updated_at = NOW(6) WHERE id = ${product}`);
  }
  parts.push(`UPDATE customers SET balance = balance - ${money(300)}, updated_at = NOW(6) WHERE id = ${customer}`);
  parts.push(`INSERT INTO audit (at, kind, payload) VALUES (NOW(6), 'order', JSON_OBJECT('order', @o, 'customer', ${customer}, 'lines', ${lines}, 'agent', 'web', 'session', '${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}'))`);
  parts.push('COMMIT');
  return parts.join(';');
}

function payment(maxOrder: number): string {
  const order = 1 + rnd(maxOrder);
  return [
    'START TRANSACTION',
    `UPDATE orders SET status = 'paid' WHERE id = ${order}`,
    `UPDATE customers SET balance = balance + ${money(300)}, updated_at = NOW(6) WHERE id = ${1 + rnd(SEED_CUSTOMERS)}`,
    'COMMIT',
  ].join(';');
}

const tidy = () => `DELETE FROM audit ORDER BY id LIMIT ${1 + rnd(5)}`;

function batch(maxOrder: number): string {
  const from = 1 + rnd(Math.max(1, maxOrder - 200));
  return `UPDATE orders SET status = IF(status = 'shipped', 'archived', 'shipped') WHERE id BETWEEN ${from} AND ${from + 199}`;
}

export interface WorkloadResult {
  seconds: number;
  /** Transactions committed by the workload's connections (probes not counted). */
  transactions: number;
  startedAt: number;
  endedAt: number;
}

export interface Probe {
  /** Wall-clock ms when the probe's commit returned. */
  t: number;
  /** The GTID sequence number of the probe's transaction (domain 0, the source's server id). */
  seq: bigint;
}

const connect = (server: MariadbServer): Promise<Connection> => createConnection({ socketPath: server.socket, user: 'root', database: SHOP, multipleStatements: true });

/**
 * Writes from `connections` connections until `stop()` says so (asked after each transaction),
 * and, with `probes`, commits one probe row every `probeMs` from a connection of its own and
 * notes when its commit returned and its GTID (MariaDB's @@last_gtid: "the GTID of the last
 * transaction the session logged", https://mariadb.com/kb/en/gtid/#last_gtid).
 */
export async function runWorkload(server: MariadbServer, options: { connections: number; stop: () => boolean; probes?: Probe[]; probeMs?: number }): Promise<WorkloadResult> {
  const maxOrder = Number(server.sql('SELECT MAX(id) FROM orders', SHOP));
  const connections = await Promise.all(Array.from({ length: options.connections }, () => connect(server)));
  const probe = options.probes ? await connect(server) : undefined;
  let transactions = 0;
  let done = false;
  const startedAt = Date.now();
  try {
    const worker = async (c: Connection) => {
      while (!done) {
        const dice = Math.random();
        await c.query(dice < 0.6 ? newOrder() : dice < 0.9 ? payment(maxOrder) : dice < 0.99 ? tidy() : batch(maxOrder));
        transactions++;
        if (options.stop()) done = true;
      }
    };
    const prober = async () => {
      if (!probe || !options.probes) return;
      while (!done) {
        await probe.query('INSERT INTO probe (at) VALUES (NOW(6))');
        const t = Date.now();
        const [rows] = await probe.query('SELECT @@last_gtid AS g');
        const gtid = String((rows as { g: string }[])[0].g);
        options.probes.push({ t, seq: BigInt(gtid.split('-')[2]) });
        await new Promise((r) => setTimeout(r, options.probeMs ?? 100));
      }
    };
    await Promise.all([...connections.map(worker), prober()]);
    const endedAt = Date.now();
    return { seconds: (endedAt - startedAt) / 1000, transactions, startedAt, endedAt };
  } finally {
    done = true;
    await Promise.all([...connections, ...(probe ? [probe] : [])].map((c) => c.end()));
  }
}
