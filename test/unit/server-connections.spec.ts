// One client cannot deny the webhook, over real TLS: each source address gets a share of the
// connections, a full server closes idle connections for new ones, keep-alive connections end
// after an age and a number of answers, and the probes have a port of their own. Loopback
// addresses (127.0.0.2, .3, …) stand in for the attacker's pod, the apiserver and the kubelet.

import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateCertificates } from '../../certs/generate.js';
import { WebhookMetrics } from '../../webhook/metrics.js';
import { review } from '../../webhook/review.js';
import { buildMonitorServer, buildServer, SERVER_LIMITS, type ServerLimits, type WebhookServer } from '../../webhook/server.js';
import { DEFAULT_MUTATION_CONFIG } from '../../webhook/types.js';
import { podReview } from './server-client.js';

// Long enough that nothing here is closed by a timer: only the connection rules close them.
const LIMITS: ServerLimits = { ...SERVER_LIMITS, maxConnections: 40, maxPerAddress: 10, maxRequests: 3, maxAgeMs: 60_000 };
const ATTACKER = '127.0.0.2';
const APISERVER = '127.0.0.9';
const KUBELET = '127.0.0.10';

let app: WebhookServer;
let monitor: WebhookServer;
let port: number;
let monitorPort: number;
const certs = generateCertificates({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
const ca = certs.caCert;

beforeAll(async () => {
  const deps = { logger: pino({ level: 'silent' }), metrics: new WebhookMetrics({ processMetrics: false }), tls: certs, limits: LIMITS };
  app = buildServer({ mutation: DEFAULT_MUTATION_CONFIG }, { ...deps, review });
  monitor = buildMonitorServer({ ...deps, limits: { maxConnections: 8, maxPerAddress: 4 } });
  await app.listen({ host: '127.0.0.1', port: 0 });
  await monitor.listen({ host: '127.0.0.1', port: 0 });
  port = (app.server.address() as { port: number }).port;
  monitorPort = (monitor.server.address() as { port: number }).port;
});

afterAll(async () => {
  await Promise.all([app.close(), monitor.close()]);
});

interface Conn {
  socket: TLSSocket;
  closed: Promise<void>;
  isClosed: () => boolean;
  text: () => string;
}

/** A TLS connection from `from`; resolves once TLS is done, or with a closed one when refused. */
function open(from: string, to = port): Promise<Conn> {
  return new Promise((resolve) => {
    // localAddress reaches net.connect; the TLS options' type does not list it.
    const socket = tlsConnect({ host: '127.0.0.1', port: to, ca, localAddress: from } as ConnectionOptions);
    let data = '';
    let closed = false;
    socket.on('data', (d: Buffer) => (data += d.toString()));
    socket.on('error', () => {});
    const conn: Conn = { socket, closed: new Promise((r) => socket.on('close', () => r())), isClosed: () => closed, text: () => data };
    socket.on('close', () => {
      closed = true;
      resolve(conn);
    });
    socket.once('secureConnect', () => resolve(conn));
  });
}

const settle = (ms = 300) => new Promise((r) => setTimeout(r, ms));

/** Writes one request and resolves with the whole answer's head, or '' when the connection closed first. */
function ask(c: Conn, request: string, marker: RegExp): Promise<string> {
  const before = c.text().length;
  c.socket.write(request);
  return new Promise((resolve) => {
    const check = () => {
      const t = c.text().slice(before);
      if (marker.test(t)) resolve(t);
      else if (c.isClosed()) resolve('');
      else setTimeout(check, 5);
    };
    check();
  });
}

const GET = (path: string) => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;
const POST = (body: string) => `POST /mutate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;

describe('one client holding every connection it can', { timeout: 30_000 }, () => {
  it('keeps its share only, while the apiserver\'s new connections and the probes are answered', async () => {
    // The attacker opens four times its share, each kept alive with a GET /healthz.
    const tries = await Promise.all(Array.from({ length: LIMITS.maxPerAddress * 4 }, () => open(ATTACKER)));
    await settle();
    const held = tries.filter((c) => !c.isClosed());
    expect(held).toHaveLength(LIMITS.maxPerAddress);
    for (const c of held) expect(await ask(c, GET('/healthz'), /"status":"ok"/)).toMatch(/^HTTP\/1\.1 200 /);

    // The apiserver: a new connection per review, every one answered.
    for (let i = 0; i < 5; i++) {
      const c = await open(APISERVER);
      const body = JSON.stringify(podReview({ uid: `review-${i}` }));
      expect(await ask(c, POST(body), new RegExp(`"uid":"review-${i}"`))).toMatch(/^HTTP\/1\.1 200 /);
      c.socket.destroy();
    }
    // The kubelet's probes, on the monitoring port, and the attacker cannot hold that one either.
    const probes = await Promise.all(Array.from({ length: 10 }, () => open(ATTACKER, monitorPort)));
    await settle();
    expect(probes.filter((c) => !c.isClosed())).toHaveLength(4);
    for (const path of ['/healthz', '/readyz', '/metrics']) {
      const k = await open(KUBELET, monitorPort);
      expect(await ask(k, GET(path), /\r\n\r\n/)).toMatch(/^HTTP\/1\.1 200 /);
      k.socket.destroy();
    }
    for (const c of [...tries, ...probes]) c.socket.destroy();
    await Promise.all([...tries, ...probes].map((c) => c.closed));
  });

  it('many addresses filling the server: a new connection closes an idle one of the address holding the most', async () => {
    const addresses = ['127.0.0.3', '127.0.0.4', '127.0.0.5', '127.0.0.6'];
    const byAddress = await Promise.all(addresses.map((a) => Promise.all(Array.from({ length: LIMITS.maxPerAddress }, () => open(a)))));
    await settle();
    const all = byAddress.flat();
    expect(all.filter((c) => !c.isClosed())).toHaveLength(LIMITS.maxConnections);
    // The server is full of idle connections; the apiserver's review is still answered.
    const c = await open(APISERVER);
    expect(await ask(c, POST(JSON.stringify(podReview({ uid: 'full' }))), /"uid":"full"/)).toMatch(/^HTTP\/1\.1 200 /);
    await settle();
    expect(all.filter((x) => x.isClosed())).toHaveLength(1);
    for (const x of [...all, c]) x.socket.destroy();
    await Promise.all([...all, c].map((x) => x.closed));
  });

  it('ends a keep-alive connection after its number of answers, with Connection: close on the last', async () => {
    const c = await open(APISERVER);
    const answers: string[] = [];
    for (let i = 1; i <= LIMITS.maxRequests; i++) answers.push(await ask(c, POST(JSON.stringify(podReview({ uid: `ka-${i}` }))), new RegExp(`"uid":"ka-${i}"`)));
    expect(answers.slice(0, -1).every((a) => /^connection: keep-alive/im.test(a))).toBe(true);
    expect(answers.at(-1)).toMatch(/^connection: close/im);
    await c.closed;
  });
});

describe('the age of a keep-alive connection', { timeout: 30_000 }, () => {
  it('is closed after its first answer past the maximum age', async () => {
    const short = buildServer({ mutation: DEFAULT_MUTATION_CONFIG }, { review, logger: pino({ level: 'silent' }), metrics: new WebhookMetrics({ processMetrics: false }), tls: certs, limits: { ...LIMITS, maxAgeMs: 500 } });
    await short.listen({ host: '127.0.0.1', port: 0 });
    try {
      const c = await open(APISERVER, (short.server.address() as { port: number }).port);
      expect(await ask(c, GET('/healthz'), /"status":"ok"/)).toMatch(/^connection: keep-alive/im);
      await settle(600);
      expect(await ask(c, GET('/healthz'), /"status":"ok"/)).toMatch(/^connection: close/im);
      await c.closed;
    } finally {
      await short.close();
    }
  });
});
