import { createServer, request, type IncomingHttpHeaders } from 'node:http';

/**
 * A recording HTTP proxy in front of moto_server, given as the endpoint to every actor of the
 * end-to-end run (hosts, drill, Lambdas, operator, the test itself). Each actor signs with an
 * access key of its own, so the SigV4 credential scope says who sent a request and to which
 * service; test/infra/recorded-calls.ts turns what is kept here into the calls the permission
 * proof simulates. Bodies are streamed through; only the small bodies of the JSON and query
 * protocols (SSM, SNS, …) are kept, since they name the operation and its resource.
 */
export interface RecordedRequest {
  /** From `Credential=<AKID>/<date>/<region>/<service>/aws4_request` (header or presigned query). */
  readonly accessKeyId?: string;
  readonly service?: string;
  readonly method: string;
  /** The path as sent (still percent-encoded), without the query. */
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  /** Lower-case names, as node gives them. */
  readonly headers: Readonly<Record<string, string>>;
  /** The body of a non-S3 request (JSON or form encoded); S3 bodies are data and are not kept. */
  readonly body?: string;
  /** moto's answer. */
  status?: number;
  responseHeaders?: Readonly<Record<string, string>>;
}

/** Which requests to answer with a refusal instead of passing them to moto (see Recorder.refuse). */
export type RefusalRule = (request: Pick<RecordedRequest, 'service' | 'method' | 'path' | 'query'>) => boolean;

export interface Recorder {
  readonly url: string;
  readonly requests: RecordedRequest[];
  /**
   * Until the returned function is called, requests the rule picks are answered 403 AccessDenied
   * by the recorder itself (still recorded, with that status): a failure S3 could give mid-run
   * (a key disabled, credentials revoked), which neither the agent nor the SDK retries.
   */
  refuse(rule: RefusalRule): () => number;
  close(): Promise<void>;
}

/** More than any SSM or SNS request of the system carries (a signing key is a few KiB). */
const KEPT_BODY_BYTES = 1 << 20;

const CREDENTIAL = /Credential=([^/,\s]+)\/[^/]+\/[^/]+\/([^/]+)\/aws4_request/;

function flat(headers: IncomingHttpHeaders): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).filter(([, v]) => v !== undefined).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : String(v)]));
}

export async function startRecorder(upstream: string): Promise<Recorder> {
  const upstreamUrl = new URL(upstream);
  const requests: RecordedRequest[] = [];
  const refusals = new Set<{ rule: RefusalRule; count: number }>();
  const server = createServer((req, res) => {
    const url = new URL(req.url!, 'http://recorder');
    const query = Object.fromEntries(url.searchParams.entries());
    const headers = flat(req.headers);
    const scope = CREDENTIAL.exec(headers.authorization ?? '') ?? CREDENTIAL.exec(`Credential=${query['X-Amz-Credential'] ?? ''}`);
    const service = scope?.[2];
    const record: { -readonly [K in keyof RecordedRequest]: RecordedRequest[K] } = { accessKeyId: scope?.[1], service, method: req.method!, path: url.pathname, query, headers };
    requests.push(record);
    const refusal = [...refusals].find((r) => r.rule(record));
    if (refusal) {
      refusal.count++;
      record.status = 403;
      req.resume();
      req.on('end', () => {
        res.writeHead(403, { 'content-type': 'application/xml' });
        res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied (refused by the test recorder)</Message></Error>');
      });
      return;
    }
    const kept: Buffer[] = [];
    let keptBytes = 0;
    const upstreamRequest = request({ host: upstreamUrl.hostname, port: upstreamUrl.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
      record.status = up.statusCode;
      record.responseHeaders = flat(up.headers);
      res.writeHead(up.statusCode!, up.headers);
      up.pipe(res);
    });
    upstreamRequest.on('error', () => res.destroy());
    req.on('data', (chunk: Buffer) => {
      if (service !== 's3' && keptBytes < KEPT_BODY_BYTES) {
        kept.push(chunk);
        keptBytes += chunk.length;
      }
    });
    req.on('end', () => {
      if (service !== 's3') record.body = Buffer.concat(kept).toString('utf8');
    });
    req.pipe(upstreamRequest);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${address.port}`,
    requests,
    refuse(rule) {
      const entry = { rule, count: 0 };
      refusals.add(entry);
      return () => {
        refusals.delete(entry);
        return entry.count;
      };
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
