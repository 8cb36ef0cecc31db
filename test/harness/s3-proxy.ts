import { createHash } from 'node:crypto';
import { createServer, request, type IncomingMessage } from 'node:http';

/**
 * An HTTP proxy in front of moto that sees every S3 request: it records what was sent (method,
 * query, headers, body SHA-256) and can drop chosen requests' connections, as a flaky network would.
 */
export interface SeenRequest {
  readonly method: string;
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

export async function startS3Proxy(target: string, options: { drop?: (method: string, query: URLSearchParams) => boolean } = {}): Promise<S3Proxy> {
  const upstreamUrl = new URL(target);
  const seen: SeenRequest[] = [];
  let dropped = 0;
  const server = createServer((req, res) => {
    const query = new URL(req.url!, 'http://proxy').searchParams;
    if (options.drop?.(req.method!, query)) {
      dropped++;
      req.socket.destroy();
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      seen.push({ method: req.method!, query, headers: req.headers, bodySha256: createHash('sha256').update(body).digest('hex'), bodyBytes: body.length, connection: String(req.socket.remotePort) });
      const upstream = request({ host: upstreamUrl.hostname, port: upstreamUrl.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
        // Hop-by-hop headers are the proxy's own (RFC 9110 §7.6.1): moto's "Connection: close"
        // would otherwise close every client connection and hide whether the client reuses them.
        const { connection: _connection, 'keep-alive': _keepAlive, ...headers } = up.headers;
        res.writeHead(up.statusCode!, headers);
        up.pipe(res);
      });
      upstream.on('error', () => res.destroy());
      upstream.end(body);
    });
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
