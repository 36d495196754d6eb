// The AWS API emulator as the fetcher in a real pod reaches it: over HTTPS at the node's bridge
// address, which pods on the pod network and on the host's reach alike. The webhook points the
// fetcher there with its endpoint settings (FETCHER_AWS_ENDPOINT_URL_*) and has it trust the
// front's CA through a ConfigMap (FETCHER_CA_BUNDLE_CONFIGMAP), as a cluster with a private
// endpoint would. The front decrypts and passes the stream to a recording proxy before moto.

import { connect, type Socket } from 'node:net';
import { createServer } from 'node:tls';
import { startAwsProxy, type AwsCall } from './aws-proxy.js';

export interface AwsFront {
  /** Every call, in order, with STS form fields (AssumeRoleWithWebIdentity's WebIdentityToken). */
  calls: AwsCall[];
  close(): Promise<void>;
}

export interface AwsFrontOptions {
  address: string;
  port: number;
  /** PEM serving certificate (for an IP SAN `address`) and its key. */
  cert: string;
  key: string;
  /** The emulator, http://127.0.0.1:<port>. */
  upstream: string;
}

export async function startAwsFront(opts: AwsFrontOptions): Promise<AwsFront> {
  const proxy = await startAwsProxy(opts.upstream);
  const proxyPort = Number(new URL(proxy.endpoint).port);
  const sockets = new Set<Socket>();
  const server = createServer({ cert: opts.cert, key: opts.key }, (client) => {
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
    server.listen(opts.port, opts.address, () => resolve());
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
