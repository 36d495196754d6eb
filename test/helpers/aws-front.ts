// The AWS API emulator under AWS's own names, for the fetcher in a real pod: the fetcher's
// endpoints and trust come only from its image and the webhook, so it calls
// https://secretsmanager.us-east-1.amazonaws.com and friends. The pods map those names to the
// node's bridge address (hostAliases); this front listens there on 443 with a certificate for
// them, signed by the test CA the local runtime base trusts, and passes the decrypted stream to a
// recording proxy in front of the emulator.

import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { createServer } from 'node:tls';
import { startAwsProxy, type AwsCall } from './aws-proxy.js';

/** The host names the fetcher calls in us-east-1 (the front's certificate names each). */
export const AWS_HOST_NAMES = [
  'secretsmanager.us-east-1.amazonaws.com',
  'ssm.us-east-1.amazonaws.com',
  'sts.us-east-1.amazonaws.com',
  'sts.amazonaws.com',
];

export interface AwsFront {
  /** Every call, in order, with STS form fields (AssumeRoleWithWebIdentity's WebIdentityToken). */
  calls: AwsCall[];
  close(): Promise<void>;
}

export async function startAwsFront(opts: { address: string; certFile: string; keyFile: string; upstream: string }): Promise<AwsFront> {
  const proxy = await startAwsProxy(opts.upstream);
  const proxyPort = Number(new URL(proxy.endpoint).port);
  const sockets = new Set<Socket>();
  const server = createServer({ cert: readFileSync(opts.certFile), key: readFileSync(opts.keyFile) }, (client) => {
    const upstream = connect(proxyPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(443, opts.address, () => resolve());
  });
  return {
    calls: proxy.calls,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await proxy.close();
    },
  };
}
