// Connections that ask nothing of the webhook are closed on time, and the server holds a bounded
// number of them, over real TLS on an ephemeral port. The limits are shortened here so each case
// takes seconds; bench/hostile.mjs measures the real figures (SERVER_LIMITS) on the built
// webhook. The real review handler sits behind the server, so a hostile review is one too.

import { readFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SERVER_LIMITS, type ServerLimits, type WebhookServer } from '../../webhook/server.js';
import { listenInProcess, podReview, postJson } from './server-client.js';

const LIMITS: ServerLimits = { ...SERVER_LIMITS, handshakeMs: 1_000, silentMs: 1_000, headersMs: 1_500, requestMs: 3_000, keepAliveMs: 2_500, checkMs: 200, maxConnections: 20, maxPerAddress: 20 };
// How late a close may come on a busy machine; the unbounded versions never close at all.
const LATE_MS = 3_000;

let app: WebhookServer;
let port: number;
let ca: string;

beforeAll(async () => {
  ({ app, port, ca } = await listenInProcess(LIMITS));
});

afterAll(async () => {
  await app.close();
});

interface Conn {
  socket: TLSSocket;
  /** performance.now() at close. */
  closed: Promise<number>;
  text: () => string;
}

function open(): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ca });
    let data = '';
    socket.on('data', (d: Buffer) => (data += d.toString()));
    const closed = new Promise<number>((r) => socket.on('close', () => r(performance.now())));
    socket.once('secureConnect', () => resolve({ socket, closed, text: () => data }));
    socket.on('error', reject);
  });
}

const post = (length: number) => `POST /mutate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`;

function trickle(socket: TLSSocket, chunk: string, everyMs: number): void {
  const timer = setInterval(() => (socket.destroyed ? clearInterval(timer) : socket.write(chunk)), everyMs);
  socket.on('close', () => clearInterval(timer));
}

describe('connections that ask nothing', { timeout: 30_000 }, () => {
  it('the real figures are the ones the bench measures', () => {
    const bench = readFileSync(join(import.meta.dirname, '../../bench/hostile.mjs'), 'utf8');
    const literal = /^const LIMITS = (\{.*\});$/m.exec(bench)?.[1] ?? '';
    const figures = JSON.parse(literal.replace(/_/g, '').replace(/(\w+):/g, '"$1":')) as unknown;
    expect(figures).toEqual(SERVER_LIMITS);
  });

  it('closes a TCP connection that never starts TLS after the handshake time', async () => {
    const socket = netConnect(port, '127.0.0.1');
    const t0 = await new Promise<number>((r) => socket.once('connect', () => r(performance.now())));
    const t1 = await new Promise<number>((r) => socket.on('close', () => r(performance.now())));
    expect(t1 - t0).toBeGreaterThanOrEqual(LIMITS.handshakeMs - 50);
    expect(t1 - t0).toBeLessThan(LIMITS.handshakeMs + LATE_MS);
  });

  it('closes a TLS connection that never sends a request after the silent time', async () => {
    const c = await open();
    const t0 = performance.now();
    const ms = (await c.closed) - t0;
    expect(ms).toBeGreaterThanOrEqual(LIMITS.silentMs - 50);
    expect(ms).toBeLessThan(LIMITS.silentMs + LATE_MS);
  });

  it('answers headers sent a line at a time with 408 at the headers time', async () => {
    const c = await open();
    const t0 = performance.now();
    c.socket.write('POST /mutate HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    trickle(c.socket, 'X-Slow: 1\r\n', 200);
    const ms = (await c.closed) - t0;
    expect(c.text()).toMatch(/^HTTP\/1\.1 408 /);
    expect(ms).toBeGreaterThanOrEqual(LIMITS.headersMs - 50);
    expect(ms).toBeLessThan(LIMITS.headersMs + LATE_MS);
  });

  it('answers a body sent a few bytes at a time with 408 at the request time', async () => {
    const c = await open();
    const t0 = performance.now();
    c.socket.write(post(100_000));
    trickle(c.socket, '          ', 200);
    const ms = (await c.closed) - t0;
    expect(c.text()).toMatch(/^HTTP\/1\.1 408 /);
    expect(ms).toBeGreaterThanOrEqual(LIMITS.requestMs - 50);
    expect(ms).toBeLessThan(LIMITS.requestMs + LATE_MS);
  });

  it('keeps an idle keep-alive connection for the keep-alive time, not the silent time, then closes it', async () => {
    const c = await open();
    const body = JSON.stringify(podReview({ uid: 'ka-1' }));
    const answered = (uid: string) =>
      new Promise<number>((r) => {
        const check = () => (c.text().includes(`"uid":"${uid}"`) ? r(performance.now()) : setTimeout(check, 5));
        check();
      });
    c.socket.write(`${post(Buffer.byteLength(body))}${body}`);
    await answered('ka-1');
    // Past the silent time, still open: a second review on it is answered.
    await new Promise((r) => setTimeout(r, LIMITS.silentMs + 500));
    const second = JSON.stringify(podReview({ uid: 'ka-2' }));
    c.socket.write(`${post(Buffer.byteLength(second))}${second}`);
    const t0 = await answered('ka-2');
    const ms = (await c.closed) - t0;
    expect(ms).toBeGreaterThanOrEqual(LIMITS.keepAliveMs - 50);
    expect(ms).toBeLessThan(LIMITS.keepAliveMs + LATE_MS);
  });

  it('closes connections over one address\'s share (here the bound) as they arrive, and answers again once the silent ones are gone', async () => {
    const held = await Promise.all(Array.from({ length: LIMITS.maxConnections }, () => open()));
    const over = await open().then(
      (c) => Promise.race([c.closed.then(() => 'closed'), new Promise((r) => setTimeout(() => r('held'), 1_000))]),
      () => 'closed',
    );
    expect(over).toBe('closed');
    await Promise.all(held.map((c) => c.closed));
    const res = await postJson(port, ca, podReview({ uid: 'after' }));
    expect(res.status).toBe(200);
  });
});

describe('a hostile review', { timeout: 30_000 }, () => {
  it('is denied in milliseconds while a review sent alongside keeps its latency', async () => {
    const normal = () => {
      const t0 = performance.now();
      return postJson(port, ca, podReview({ uid: 'normal', annotations: { 'secrets.k8s.aws/secret.db': 'arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf' } })).then((r) => {
        expect(r.status).toBe(200);
        return performance.now() - t0;
      });
    };
    const alone = Math.min(await normal(), await normal(), await normal());
    const hostile = podReview({ uid: 'hostile', annotations: { [`secrets.k8s.aws/${'x'.repeat(1_000_000)}`]: 'v' } });
    const t0 = performance.now();
    const [h, alongside] = await Promise.all([
      postJson(port, ca, hostile).then((r) => ({ r, ms: performance.now() - t0 })),
      new Promise((r) => setTimeout(r, 5)).then(normal),
    ]);
    expect(h.r.status).toBe(200);
    expect(h.r.body).toContain('over the apiserver\'s limit of 262144');
    // A 1 MB body: TLS, JSON and the bounds, no parse of the annotations and no suggestion.
    expect(h.ms).toBeLessThan(1_000);
    expect(alongside).toBeLessThan(alone + 1_000);
  });
});
