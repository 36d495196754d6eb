// Cross-account reads in front of the emulator. moto keeps one set of secrets and parameters per
// account (the account of the credentials a call is signed with) but never serves another
// account's by ARN, which AWS does when a resource policy (or a RAM share) allows it. This proxy
// sends every Secrets Manager SecretId and SSM parameter ARN naming another account to moto under
// that account's access key, and merges the answers of a batch the way AWS returns them: in an
// order of its own, here the other accounts' first. Everything else passes through unchanged.

import { createServer, request, type IncomingMessage } from 'node:http';

export interface CrossAccountCall {
  /** `secretsmanager.GetSecretValue`, `secretsmanager.BatchGetSecretValue`, `AmazonSSM.GetParameters`, … */
  operation: string;
  /** The SecretIds or parameter Names asked for in this call. */
  ids: string[];
}

export interface CrossAccountProxy {
  endpoint: string;
  calls: CrossAccountCall[];
  close(): Promise<void>;
}

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

const accountOf = (id: string): string | undefined => /^arn:[^:]+:(?:secretsmanager|ssm):[^:]*:(\d{12}):/.exec(id)?.[1];

/** `keys`: account id -> an access key moto holds for that account (from STS AssumeRole). */
export async function startCrossAccountProxy(upstream: string, keys: Record<string, string>): Promise<CrossAccountProxy> {
  const target = new URL(upstream);
  const calls: CrossAccountCall[] = [];

  const forward = (req: IncomingMessage, body: Buffer, accessKey?: string): Promise<{ status: number; headers: IncomingMessage['headers']; body: Buffer }> =>
    new Promise((resolve, reject) => {
      const headers = { ...req.headers, host: target.host, 'content-length': String(body.length) };
      // moto takes the account from the access key and does not check the signature.
      if (accessKey !== undefined && typeof headers.authorization === 'string') {
        headers.authorization = headers.authorization.replace(/Credential=[^/]+\//, `Credential=${accessKey}/`);
      }
      const up = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 502, headers: res.headers, body: Buffer.concat(chunks) }));
      });
      up.on('error', reject);
      up.end(body);
    });

  /** Asks for `ids` (field `field` of the request) once per account and merges the lists in `lists`. */
  const fanOut = async (req: IncomingMessage, input: Record<string, unknown>, field: string, ids: string[], lists: string[]): Promise<Answer> => {
    const groups = new Map<string | undefined, string[]>();
    for (const id of ids) {
      const account = accountOf(id);
      const key = account !== undefined && account in keys ? account : undefined;
      groups.set(key, [...(groups.get(key) ?? []), id]);
    }
    const merged: Record<string, unknown[]> = Object.fromEntries(lists.map((l) => [l, []]));
    // Other accounts first: an answer list in the order asked would hide a match made by order.
    for (const [account, group] of [...groups].sort(([a], [b]) => (a === undefined ? 1 : 0) - (b === undefined ? 1 : 0))) {
      const res = await forward(req, Buffer.from(JSON.stringify({ ...input, [field]: group })), account === undefined ? undefined : keys[account]);
      const out = JSON.parse(res.body.toString('utf8') || '{}') as Record<string, unknown>;
      if (res.status !== 200) return { status: res.status, body: out };
      for (const l of lists) merged[l]!.push(...((out[l] as unknown[] | undefined) ?? []));
    }
    return { status: 200, body: merged };
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const body = Buffer.concat(chunks);
      const operation = String(req.headers['x-amz-target'] ?? '');
      try {
        const input = operation === '' ? {} : (JSON.parse(body.toString('utf8') || '{}') as Record<string, unknown>);
        let answer: Answer | undefined;
        if (operation === 'secretsmanager.GetSecretValue') {
          const id = String(input.SecretId);
          calls.push({ operation, ids: [id] });
          const account = accountOf(id);
          if (account !== undefined && account in keys) {
            const r = await forward(req, body, keys[account]);
            answer = { status: r.status, body: JSON.parse(r.body.toString('utf8')) as Record<string, unknown> };
          }
        } else if (operation === 'secretsmanager.BatchGetSecretValue') {
          const ids = input.SecretIdList as string[];
          calls.push({ operation, ids });
          answer = await fanOut(req, input, 'SecretIdList', ids, ['SecretValues', 'Errors']);
        } else if (operation === 'AmazonSSM.GetParameters') {
          const ids = input.Names as string[];
          calls.push({ operation, ids });
          answer = await fanOut(req, input, 'Names', ids, ['Parameters', 'InvalidParameters']);
        }
        if (answer !== undefined) {
          const payload = JSON.stringify(answer.body);
          res.writeHead(answer.status, { 'content-type': 'application/x-amz-json-1.1', 'content-length': Buffer.byteLength(payload) });
          res.end(payload);
          return;
        }
        const r = await forward(req, body);
        res.writeHead(r.status, r.headers);
        res.end(r.body);
      } catch (e) {
        res.writeHead(502).end(String(e));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    calls,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
