import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';

/**
 * A file-backed S3 endpoint for the restore benchmark, because moto holds objects in memory and
 * serves a 1.3 GB object far slower than the disk or the network could: with moto the figures
 * would show moto. Path-style, no signature checks, one bucket namespace per directory. It
 * answers what the agent's backup and restore and `aws s3 cp` call: CreateBucket, PutObject
 * (If-None-Match), the multipart calls, ListMultipartUploads (always empty), ListObjectsV2
 * (prefix, pagination), HeadObject and ranged GetObject (If-Match). Not a general S3: nothing
 * else is implemented, and anything else answers 501 so a new call shows up at once.
 * Run as its own process: `tsx bench/s3-files.ts PORT DIR` (prints the port it listens on).
 */
const port = Number(process.argv[2] ?? 0);
const root = process.argv[3];
if (!root) throw new Error('usage: s3-files.ts PORT DIR');
const objectsDir = join(root, 'objects');
const uploadsDir = join(root, 'uploads');
mkdirSync(objectsDir, { recursive: true });
mkdirSync(uploadsDir, { recursive: true });

interface ObjectMeta {
  readonly key: string;
  readonly size: number;
  readonly etag: string;
  readonly lastModified: string;
  readonly headers: Record<string, string>;
}

const fileOf = (bucket: string, key: string) => join(objectsDir, encodeURIComponent(`${bucket}/${key}`));
const metaOf = (bucket: string, key: string): ObjectMeta | undefined => {
  const file = `${fileOf(bucket, key)}.meta`;
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as ObjectMeta) : undefined;
};
const xmlEscape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Headers S3 stores with an object and gives back on HEAD/GET (metadata, lock, content type). */
function keptHeaders(req: IncomingMessage): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (typeof value !== 'string') continue;
    if (name.startsWith('x-amz-meta-') || name.startsWith('x-amz-object-lock-') || name === 'content-type' || name === 'x-amz-storage-class') kept[name] = value;
  }
  return kept;
}

function commit(bucket: string, key: string, written: string, size: number, etag: string, headers: Record<string, string>): void {
  renameSync(written, fileOf(bucket, key));
  const meta: ObjectMeta = { key, size, etag, lastModified: new Date().toUTCString(), headers };
  writeFileSync(`${fileOf(bucket, key)}.meta`, JSON.stringify(meta));
}

/**
 * The body as bytes on disk. The SDK may send `aws-chunked` bodies (flexible checksums with a
 * trailer): those are decoded; plain bodies are streamed straight to the file.
 */
async function receive(req: IncomingMessage, file: string): Promise<number> {
  if (!(req.headers['content-encoding'] ?? '').includes('aws-chunked')) {
    await pipeline(req, createWriteStream(file, { highWaterMark: 1 << 20 }));
    return statSync(file).size;
  }
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const raw = Buffer.concat(chunks);
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = raw.indexOf('\r\n', at);
    const length = parseInt(raw.subarray(at, lineEnd).toString().split(';')[0], 16);
    at = lineEnd + 2;
    if (!length) break;
    parts.push(raw.subarray(at, at + length));
    at += length + 2;
  }
  const body = Buffer.concat(parts);
  writeFileSync(file, body);
  return body.length;
}

function error(res: ServerResponse, status: number, code: string, head = false): void {
  res.writeHead(status, { 'content-type': 'application/xml' });
  res.end(head ? undefined : `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${code}</Message></Error>`);
}

function xml(res: ServerResponse, body: string): void {
  res.writeHead(200, { 'content-type': 'application/xml' });
  res.end(`<?xml version="1.0" encoding="UTF-8"?>${body}`);
}

function list(res: ServerResponse, bucket: string, query: URLSearchParams): void {
  const prefix = query.get('prefix') ?? '';
  const after = query.get('continuation-token') ?? query.get('start-after') ?? '';
  const max = Math.min(Number(query.get('max-keys') ?? 1000), 1000);
  const keys = readdirSync(objectsDir)
    .filter((f) => f.endsWith('.meta'))
    .map((f) => decodeURIComponent(f.slice(0, -'.meta'.length)))
    .filter((full) => full.startsWith(`${bucket}/${prefix}`))
    .map((full) => full.slice(bucket.length + 1))
    .filter((key) => key > after)
    .sort();
  const page = keys.slice(0, max);
  const truncated = keys.length > max;
  const contents = page
    .map((key) => {
      const meta = metaOf(bucket, key)!;
      return `<Contents><Key>${xmlEscape(key)}</Key><LastModified>${new Date(meta.lastModified).toISOString()}</LastModified><ETag>${xmlEscape(meta.etag)}</ETag><Size>${meta.size}</Size><StorageClass>${meta.headers['x-amz-storage-class'] ?? 'STANDARD'}</StorageClass></Contents>`;
    })
    .join('');
  const next = truncated ? `<NextContinuationToken>${xmlEscape(page[page.length - 1])}</NextContinuationToken>` : '';
  xml(res, `<ListBucketResult><Name>${bucket}</Name><Prefix>${xmlEscape(prefix)}</Prefix><KeyCount>${page.length}</KeyCount><MaxKeys>${max}</MaxKeys><IsTruncated>${truncated}</IsTruncated>${next}${contents}</ListBucketResult>`);
}

function read(req: IncomingMessage, res: ServerResponse, bucket: string, key: string): void {
  const head = req.method === 'HEAD';
  const meta = metaOf(bucket, key);
  if (!meta) return error(res, 404, 'NoSuchKey', head);
  const ifMatch = req.headers['if-match'];
  if (ifMatch && ifMatch !== meta.etag && ifMatch !== '*') return error(res, 412, 'PreconditionFailed', head);
  const headers: Record<string, string | number> = { ...meta.headers, etag: meta.etag, 'last-modified': meta.lastModified, 'accept-ranges': 'bytes' };
  headers['content-type'] ??= 'binary/octet-stream';
  const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
  let start = 0;
  let end = meta.size - 1;
  if (range) {
    if (range[1] === '') start = Math.max(0, meta.size - Number(range[2]));
    else {
      start = Number(range[1]);
      if (range[2] !== '') end = Math.min(end, Number(range[2]));
    }
    if (start > end) return error(res, 416, 'InvalidRange', head);
    headers['content-range'] = `bytes ${start}-${end}/${meta.size}`;
  }
  headers['content-length'] = end - start + 1;
  res.writeHead(range ? 206 : 200, headers);
  if (head || meta.size === 0) return void res.end();
  createReadStream(fileOf(bucket, key), { start, end, highWaterMark: 1 << 20 }).pipe(res);
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url!, 'http://s3');
  const [bucket, ...rest] = url.pathname.slice(1).split('/');
  const key = decodeURIComponent(rest.join('/'));
  const query = url.searchParams;
  if (!bucket) return error(res, 501, 'NotImplemented');
  if (!key) {
    if (req.method === 'PUT') return xml(res, '');
    if (req.method === 'GET' && query.has('uploads')) return xml(res, `<ListMultipartUploadsResult><Bucket>${bucket}</Bucket><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>`);
    if (req.method === 'GET') return list(res, bucket, query);
    return error(res, 501, 'NotImplemented');
  }
  if (req.method === 'GET' || req.method === 'HEAD') return read(req, res, bucket, key);
  if (req.method === 'POST' && query.has('uploads')) {
    const uploadId = randomBytes(12).toString('hex');
    mkdirSync(join(uploadsDir, uploadId));
    writeFileSync(join(uploadsDir, uploadId, 'headers.json'), JSON.stringify(keptHeaders(req)));
    return xml(res, `<InitiateMultipartUploadResult><Bucket>${bucket}</Bucket><Key>${xmlEscape(key)}</Key><UploadId>${uploadId}</UploadId></InitiateMultipartUploadResult>`);
  }
  const uploadId = query.get('uploadId');
  if (uploadId && !existsSync(join(uploadsDir, uploadId))) {
    req.resume();
    return error(res, 404, 'NoSuchUpload');
  }
  if (req.method === 'PUT' && uploadId) {
    const part = Number(query.get('partNumber'));
    const size = await receive(req, join(uploadsDir, uploadId, `${part}`));
    const etag = `"${createHash('md5').update(`${uploadId}/${part}/${size}`).digest('hex')}"`;
    const checksum = req.headers['x-amz-checksum-sha256'];
    res.writeHead(200, { etag, ...(typeof checksum === 'string' ? { 'x-amz-checksum-sha256': checksum } : {}) });
    return void res.end();
  }
  if (req.method === 'POST' && uploadId) {
    for await (const chunk of req) void chunk;
    const dir = join(uploadsDir, uploadId);
    const parts = readdirSync(dir).filter((f) => /^\d+$/.test(f)).map(Number).sort((a, b) => a - b);
    const assembled = join(dir, 'object');
    const out = createWriteStream(assembled, { highWaterMark: 1 << 20 });
    let size = 0;
    for (const part of parts) {
      size += statSync(join(dir, `${part}`)).size;
      // Written chunk by chunk, not piped: a pipeline per part would add listeners to `out` each time.
      for await (const chunk of createReadStream(join(dir, `${part}`), { highWaterMark: 1 << 20 })) {
        if (!out.write(chunk)) await once(out, 'drain');
      }
    }
    await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
    const etag = `"${randomBytes(16).toString('hex')}-${parts.length}"`;
    commit(bucket, key, assembled, size, etag, JSON.parse(readFileSync(join(dir, 'headers.json'), 'utf8')) as Record<string, string>);
    rmSync(dir, { recursive: true, force: true });
    return xml(res, `<CompleteMultipartUploadResult><Bucket>${bucket}</Bucket><Key>${xmlEscape(key)}</Key><ETag>${xmlEscape(etag)}</ETag></CompleteMultipartUploadResult>`);
  }
  if (req.method === 'DELETE' && uploadId) {
    rmSync(join(uploadsDir, uploadId), { recursive: true, force: true });
    res.writeHead(204);
    return void res.end();
  }
  if (req.method === 'PUT') {
    if (req.headers['if-none-match'] === '*' && metaOf(bucket, key)) {
      req.resume();
      return error(res, 412, 'PreconditionFailed');
    }
    const written = join(uploadsDir, `put-${randomBytes(8).toString('hex')}`);
    const size = await receive(req, written);
    const etag = `"${createHash('md5').update(readFileSync(written)).digest('hex')}"`;
    commit(bucket, key, written, size, etag, keptHeaders(req));
    res.writeHead(200, { etag });
    return void res.end();
  }
  req.resume();
  error(res, 501, 'NotImplemented');
}

const server = createServer((req, res) => {
  handle(req, res).catch((err: unknown) => {
    process.stderr.write(`s3-files: ${req.method} ${req.url}: ${String(err)}\n`);
    if (!res.headersSent) error(res, 500, 'InternalError');
    else res.destroy();
  });
});
server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1', () => {
  const address = server.address() as { port: number };
  process.stdout.write(`${address.port}\n`);
});
