// A forward proxy of the kind clusters put egress behind: HTTP CONNECT tunnels (and absolute-URI
// requests for plain http:// targets). It records every host asked for and carries traffic only
// to this machine (127.0.0.1, ::1, localhost): any other host is answered 502 after being
// recorded, so a test sees where a client would have gone without any network. With `tls` the
// proxy itself speaks HTTPS (an https:// proxy URL). Bounded: at most
// `maxConnections` client connections at once, each closed after `idleMs` without traffic.

import { createServer, request, type IncomingMessage, type RequestListener } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { connect, type Socket } from 'node:net';

export interface ProxyRequest {
  /** CONNECT (a tunnel) or the method of a plain-HTTP request. */
  method: string;
  /** host:port asked for. */
  target: string;
}

export interface ConnectProxy {
  /** http(s)://127.0.0.1:<port>, what HTTPS_PROXY is set to. */
  url: string;
  requests: ProxyRequest[];
  /** Local ports of the connections the proxy opened to the targets: a call that arrived from one came through the proxy. */
  upstreamPorts: Set<number>;
  close(): Promise<void>;
}

const LOCAL = new Set(['127.0.0.1', '::1', '[::1]', 'localhost']);

export async function startConnectProxy(
  opts: { maxConnections?: number; idleMs?: number; tls?: { key: string; cert: string } } = {},
): Promise<ConnectProxy> {
  const maxConnections = opts.maxConnections ?? 64;
  const idleMs = opts.idleMs ?? 30_000;
  const requests: ProxyRequest[] = [];
  const upstreamPorts = new Set<number>();
  const sockets = new Set<Socket>();
  const track = (s: Socket) => {
    sockets.add(s);
    s.setTimeout(idleMs, () => s.destroy());
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
  };
  const split = (target: string): { host: string; port: number } => {
    const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(target);
    return m ? { host: m[1]!, port: Number(m[2]) } : { host: target, port: 0 };
  };

  const plainHttp: RequestListener = (req: IncomingMessage, res) => {
    // A plain-HTTP request in absolute form: GET http://host:port/path.
    let u: URL;
    try {
      u = new URL(req.url ?? '');
    } catch {
      res.writeHead(400).end('absolute URI required');
      return;
    }
    requests.push({ method: req.method ?? '', target: u.host });
    if (!LOCAL.has(u.hostname)) {
      res.writeHead(502).end('this test proxy reaches only 127.0.0.1');
      return;
    }
    const up = request({ host: u.hostname, port: u.port, method: req.method, path: `${u.pathname}${u.search}`, headers: req.headers }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.pipe(res);
    });
    up.on('socket', (s) => s.once('connect', () => upstreamPorts.add(s.localPort ?? 0)));
    up.on('error', () => res.writeHead(502).end());
    req.pipe(up);
  };
  const server = opts.tls ? createTlsServer(opts.tls, plainHttp) : createServer(plainHttp);
  server.maxConnections = maxConnections;
  server.on(opts.tls ? 'secureConnection' : 'connection', track);
  server.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) => {
    const target = req.url ?? '';
    requests.push({ method: 'CONNECT', target });
    const { host, port } = split(target);
    if (!LOCAL.has(host) || port === 0) {
      client.end('HTTP/1.1 502 Bad Gateway\r\n\r\n');
      return;
    }
    const upstream = connect({ host: host.replace(/^\[|\]$/g, ''), port }, () => {
      upstreamPorts.add(upstream.localPort ?? 0);
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    track(upstream);
    upstream.on('error', () => client.end('HTTP/1.1 502 Bad Gateway\r\n\r\n'));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    requests,
    upstreamPorts,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
