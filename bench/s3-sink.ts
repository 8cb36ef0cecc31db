import { createHash } from 'node:crypto';
import { createServer } from 'node:http';

/**
 * A discard-everything S3 endpoint for the benchmark: answers the multipart calls the agent makes
 * and throws the bytes away, so the figures show the pipeline, not a storage server's speed.
 * Run as its own process: `tsx bench/s3-sink.ts PORT`.
 */
const port = Number(process.argv[2] ?? 0);
let uploads = 0;

const server = createServer((req, res) => {
  const url = new URL(req.url!, 'http://sink');
  let bytes = 0;
  req.on('data', (chunk: Buffer) => (bytes += chunk.length));
  req.on('end', () => {
    const etag = `"${createHash('md5').update(String(bytes)).digest('hex')}"`;
    if (req.method === 'POST' && url.searchParams.has('uploads')) {
      uploads++;
      res.writeHead(200, { 'content-type': 'application/xml' });
      res.end(`<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>u${uploads}</UploadId></InitiateMultipartUploadResult>`);
    } else if (req.method === 'POST' && url.searchParams.has('uploadId')) {
      res.writeHead(200, { 'content-type': 'application/xml' });
      res.end(`<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUploadResult><Location>x</Location><Bucket>b</Bucket><Key>k</Key><ETag>${etag}</ETag></CompleteMultipartUploadResult>`);
    } else if (req.method === 'PUT' || req.method === 'DELETE') {
      res.writeHead(req.method === 'DELETE' ? 204 : 200, { etag });
      res.end();
    } else {
      res.writeHead(404);
      res.end();
    }
  });
});

server.listen(port, '127.0.0.1', () => {
  const address = server.address() as { port: number };
  process.stdout.write(`${address.port}\n`);
});
