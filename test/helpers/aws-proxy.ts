// A small HTTP proxy in front of the emulator that records every AWS operation (with the form
// fields of STS calls, so a test can see which identity calls were made with which token and role)
// and can answer some of them with an error instead of forwarding them: the one fault no emulator
// produces on cue (throttling bursts, a denied action).

import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';

export interface Fault {
  status: number;
  /** The AWS error code, e.g. ThrottlingException. */
  type: string;
  message: string;
}

export interface AwsCall {
  /** As in `operations`. */
  operation: string;
  /** Form fields of query-protocol (STS) calls, e.g. RoleArn, WebIdentityToken; empty otherwise. */
  params: Record<string, string>;
  /** The region the call was signed for (its SigV4 credential scope); '' when unsigned. */
  region: string;
  /** The client's source port: which connection (a proxy's tunnel, say) carried the call. */
  remotePort: number;
  /** The access key id the call was signed with (SigV4 Authorization header), if signed. */
  accessKeyId?: string;
}

export interface AwsProxy {
  endpoint: string;
  /** Operations seen, in order: `secretsmanager.GetSecretValue`, `AmazonSSM.GetParameters`, `sts.AssumeRole`… */
  operations: string[];
  /** The same calls with their STS form fields. */
  calls: AwsCall[];
  /** Operations answered with a fault instead of being forwarded. */
  faulted: string[];
  close(): Promise<void>;
}

function callOf(req: IncomingMessage, body: Buffer): AwsCall {
  // Credential=<key id>/<date>/<region>/<service>/aws4_request
  const scope = /Credential=([^/,\s]+)\/\d{8}\/([a-z0-9-]+)\//.exec(String(req.headers.authorization ?? ''));
  const signed = scope !== null ? { accessKeyId: scope[1]! } : {};
  const region = scope?.[2] ?? '';
  const remotePort = req.socket.remotePort ?? 0;
  const target = req.headers['x-amz-target'];
  if (typeof target === 'string') return { operation: target, params: {}, region, remotePort, ...signed };
  // STS speaks the query protocol: the operation is the form's Action.
  const params = Object.fromEntries(new URLSearchParams(body.toString('utf8')));
  return { operation: params.Action ? `sts.${params.Action}` : `${req.method} ${req.url}`, params, region, remotePort, ...signed };
}

/**
 * `fault(operation, seenBefore, call)` returns a fault to answer with, 'hang' to never answer (the
 * connection stays open until the client gives up or the proxy closes), or undefined to forward.
 * With `tls` (a key and certificate) the proxy serves HTTPS, an endpoint with that certificate.
 */
export async function startAwsProxy(
  upstream: string,
  fault: (operation: string, seenBefore: number, call: AwsCall) => Fault | 'hang' | undefined = () => undefined,
  opts: { tls?: { key: string; cert: string } } = {},
): Promise<AwsProxy> {
  const operations: string[] = [];
  const calls: AwsCall[] = [];
  const faulted: string[] = [];
  const target = new URL(upstream);
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const call = callOf(req, body);
      const op = call.operation;
      const seenBefore = operations.filter((o) => o === op).length;
      operations.push(op);
      calls.push(call);
      const f = fault(op, seenBefore, call);
      if (f === 'hang') {
        faulted.push(op);
        return;
      }
      if (f) {
        faulted.push(op);
        const payload = JSON.stringify({ __type: f.type, message: f.message });
        res.writeHead(f.status, {
          'content-type': 'application/x-amz-json-1.1',
          'x-amzn-errortype': f.type,
          'x-amzn-requestid': 'proxy-fault',
          'content-length': Buffer.byteLength(payload),
        });
        res.end(payload);
        return;
      }
      const headers = { ...req.headers, host: target.host };
      const up = request(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers },
        (upRes) => {
          res.writeHead(upRes.statusCode ?? 502, upRes.headers);
          upRes.pipe(res);
        },
      );
      up.on('error', (e) => {
        res.writeHead(502);
        res.end(String(e));
      });
      up.end(body);
    });
  };
  const server = opts.tls ? createTlsServer(opts.tls, handler) : createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    endpoint: `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    operations,
    calls,
    faulted,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
