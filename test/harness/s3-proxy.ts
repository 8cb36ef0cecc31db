import { createHash } from 'node:crypto';
import { createServer, request, type IncomingMessage } from 'node:http';

/**
 * An HTTP proxy in front of moto that sees every S3 request: it records what was sent (method,
 * query, headers, body SHA-256) and can drop chosen requests' connections, as a flaky network would,
 * or hold chosen requests back before forwarding them, as a slow one would (a request whose client
 * gave up meanwhile is never forwarded).
 */
export interface SeenRequest {
  readonly method: string;
  /** The request's path (/bucket/key with path-style addressing). */
  readonly path: string;
  readonly query: URLSearchParams;
  readonly headers: IncomingMessage['headers'];
  readonly bodySha256: string;
  readonly bodyBytes: number;
  /** The client's end of the TCP connection the request came on ("port"): one per connection. */
  readonly connection: string;
}

export interface S3Proxy {
  readonly url: string;
  readonly seen: SeenRequest[];
  readonly dropped: () => number;
  close(): Promise<void>;
}

/**
 * S3's answers to a caller without s3:ListBucket on the whole bucket (moto evaluates no policy):
 * a GET or HEAD of a missing key is answered 403 instead of 404, as AWS documents
 * (https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html, "Permissions"), and a
 * listing is refused unless its prefix lies under one of `listablePrefixes` (an s3:prefix condition,
 * as the drill host has; none: no listing at all).
 */
export interface WithoutListBucket {
  readonly listablePrefixes: readonly string[];
}

const ACCESS_DENIED = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>';

export async function startS3Proxy(
  target: string,
  options: { drop?: (method: string, query: URLSearchParams, path: string) => boolean; delayMs?: (method: string) => number; withoutListBucket?: WithoutListBucket } = {},
): Promise<S3Proxy> {
  const upstreamUrl = new URL(target);
  const seen: SeenRequest[] = [];
  let dropped = 0;
  const server = createServer((req, res) => {
    const query = new URL(req.url!, 'http://proxy').searchParams;
    if (options.drop?.(req.method!, query, decodeURIComponent(new URL(req.url!, 'http://proxy').pathname))) {
      dropped++;
      req.socket.destroy();
      return;
    }
    const chunks: Buffer[] = [];
    let clientGone = false;
    res.on('close', () => (clientGone = true));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => setTimeout(forward, options.delayMs?.(req.method!) ?? 0));
    const forward = () => {
      if (clientGone) return;
      const body = Buffer.concat(chunks);
      seen.push({ method: req.method!, path: decodeURIComponent(new URL(req.url!, 'http://proxy').pathname), query, headers: req.headers, bodySha256: createHash('sha256').update(body).digest('hex'), bodyBytes: body.length, connection: String(req.socket.remotePort) });
      const denied = (head: boolean) => {
        res.writeHead(403, { 'content-type': 'application/xml' });
        res.end(head ? undefined : ACCESS_DENIED);
      };
      const limits = options.withoutListBucket;
      const s3 = /\/s3\/aws4_request/.test(req.headers.authorization ?? '');
      if (limits && s3 && req.method === 'GET' && query.get('list-type') === '2' && !limits.listablePrefixes.some((p) => (query.get('prefix') ?? '').startsWith(p))) return denied(false);
      const upstream = request({ host: upstreamUrl.hostname, port: upstreamUrl.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
        if (limits && s3 && up.statusCode === 404 && (req.method === 'GET' || req.method === 'HEAD') && !query.has('list-type')) {
          up.resume();
          return denied(req.method === 'HEAD');
        }
        // Hop-by-hop headers are the proxy's own (RFC 9110 §7.6.1): moto's "Connection: close"
        // would otherwise close every client connection and hide whether the client reuses them.
        const { connection: _connection, 'keep-alive': _keepAlive, ...headers } = up.headers;
        res.writeHead(up.statusCode!, headers);
        up.pipe(res);
      });
      upstream.on('error', () => res.destroy());
      upstream.end(body);
    };
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${address.port}`,
    seen,
    dropped: () => dropped,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
