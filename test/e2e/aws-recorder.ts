// A recording pass-through in front of the AWS emulator: forwards every request unchanged and
// notes which API operation it was, so a test can show which identity calls the fetcher made
// (AssumeRoleWithWebIdentity with the real token, AssumeRole into the chained role, ...).

import { createServer, request, type Server } from 'node:http';

export interface AwsCall {
  /** STS/SSM/Secrets Manager operation, e.g. AssumeRole or secretsmanager.BatchGetSecretValue. */
  operation: string;
  /** Form fields of query-protocol calls (STS), e.g. RoleArn, WebIdentityToken. */
  params: Record<string, string>;
}

export interface AwsRecorder {
  endpoint: string;
  calls: AwsCall[];
  close(): Promise<void>;
}

export async function startAwsRecorder(target: string): Promise<AwsRecorder> {
  const calls: AwsCall[] = [];
  const upstream = new URL(target);
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const amzTarget = req.headers['x-amz-target'];
      if (typeof amzTarget === 'string') {
        calls.push({ operation: amzTarget, params: {} });
      } else {
        const params = Object.fromEntries(new URLSearchParams(body.toString('utf8')));
        calls.push({ operation: params.Action ?? `${req.method} ${req.url}`, params });
      }
      const fwd = request(
        { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      fwd.on('error', (e) => {
        res.writeHead(502);
        res.end(String(e));
      });
      fwd.end(body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    calls,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
