// The built CLI (`node <bundle>/cli.mjs webhook`) as a child process: start-up errors, the
// development certificate of `npm start`, and SIGTERM with a review in flight.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateCertificates } from '../../certs/generate.js';
import { bundleDir, ensureBundles } from '../helpers/bundles.js';
import { review } from '../../webhook/review.js';
import { DEFAULT_MUTATION_CONFIG } from '../../webhook/types.js';
import { call, podReview, postJson } from './server-client.js';

const bundle = bundleDir();
const cli = join(bundle, 'cli.mjs');
const SEED = {
  'secrets.k8s.aws/sidecarInjectorWebhook': 'enabled',
  'secrets.k8s.aws/secret-arn': 'arn:aws:secretsmanager:us-east-1:123456789012:secret:database-password-hlRvvF',
};

const dir = mkdtempSync(join(tmpdir(), 'webhook-process-'));
const certs = generateCertificates({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
writeFileSync(join(dir, 'tls.crt'), certs.cert);
writeFileSync(join(dir, 'tls.key'), certs.key, { mode: 0o600 });
const children: ChildProcess[] = [];

beforeAll(() => {
  ensureBundles(bundle);
}, 120_000);

afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

interface Running {
  child: ChildProcess;
  port: number;
  output: () => string;
  exit: Promise<number | null>;
}

/** Starts the webhook on a free port of 127.0.0.1 and waits for its "listening" line. */
async function start(env: Record<string, string>, args: string[] = []): Promise<Running> {
  const child = spawn(process.execPath, [cli, 'webhook', ...args], {
    cwd: dir,
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const exit = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const end = Date.now() + 20_000;
  while (Date.now() < end && child.exitCode === null) {
    const m = /"port":(\d+),"url":"https:\/\/[^"]+\/mutate","msg":"listening"/.exec(out);
    if (m) return { child, port: Number(m[1]), output: () => out, exit };
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`the webhook did not start:\n${out}`);
}

function run(env: Record<string, string>, args: string[] = []): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, 'webhook', ...args], {
    cwd: dir,
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', ...env },
    encoding: 'utf8',
    timeout: 20_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('webhook process', () => {
  it('lists every configuration problem at once and exits 2', () => {
    const r = run({ PORT: 'x', LOG_LEVEL: 'chatty', TLS_CERT_FILE: join(dir, 'tls.crt') }, ['--fetcher-uid', '0']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('webhook: invalid configuration:');
    for (const what of ['PORT="x"', 'LOG_LEVEL="chatty"', '--fetcher-uid="0"', 'TLS_CERT_FILE and TLS_KEY_FILE must be set together']) {
      expect(r.stderr).toContain(what);
    }
  });

  it('prints its options with --help and exits 0', () => {
    const r = run({}, ['--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('--tls-cert-file');
  });

  it('refuses to start with a key that does not belong to the certificate, naming the files', () => {
    const other = generateCertificates({ dnsNames: ['localhost'] });
    writeFileSync(join(dir, 'other.key'), other.key);
    const r = run({ TLS_CERT_FILE: join(dir, 'tls.crt'), TLS_KEY_FILE: join(dir, 'other.key') });
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/"level":60.*tls\.crt \+ .*other\.key: the key does not belong to the certificate/);
  });

  it('serves a self-signed development certificate for 127.0.0.1 when no TLS files are set', async () => {
    const w = await start({});
    expect(w.output()).toMatch(/"level":40.*self-signed development certificate/);
    const { peer, ok } = await new Promise<{ peer: string; ok: boolean }>((res, rej) => {
      const s: TLSSocket = connect({ host: '127.0.0.1', port: w.port, rejectUnauthorized: false }, () => {
        res({ peer: s.getPeerCertificate().subjectaltname ?? '', ok: s.authorized });
        s.end();
      });
      s.on('error', rej);
    });
    expect(peer).toContain('IP Address:127.0.0.1');
    expect(ok).toBe(false);
    w.child.kill('SIGTERM');
    expect(await w.exit).toBe(0);
  }, 30_000);

  it('reloads replaced TLS files without a restart and counts the reload in /metrics', async () => {
    const tlsDir = mkdtempSync(join(dir, 'reload-'));
    writeFileSync(join(tlsDir, 'tls.crt'), certs.cert);
    writeFileSync(join(tlsDir, 'tls.key'), certs.key, { mode: 0o600 });
    const w = await start({ TLS_CERT_FILE: join(tlsDir, 'tls.crt'), TLS_KEY_FILE: join(tlsDir, 'tls.key') });
    const ca = certs.caCert;
    const before = (await call(w.port, { ca, method: 'GET', path: '/healthz' })).fingerprint;
    const next = generateCertificates({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], ca: { cert: certs.caCert, key: certs.caKey } });
    // Written whole and renamed into place, as a tool that updates files atomically does.
    writeFileSync(join(tlsDir, 'tls.key.new'), next.key, { mode: 0o600 });
    writeFileSync(join(tlsDir, 'tls.crt.new'), next.cert);
    renameSync(join(tlsDir, 'tls.key.new'), join(tlsDir, 'tls.key'));
    renameSync(join(tlsDir, 'tls.crt.new'), join(tlsDir, 'tls.crt'));
    const end = Date.now() + 15_000;
    while (!w.output().includes('TLS certificate reloaded') && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    const after = (await call(w.port, { ca, method: 'GET', path: '/healthz' })).fingerprint;
    expect(after).not.toBe(before);
    const metrics = (await call(w.port, { ca, method: 'GET', path: '/metrics' })).body;
    expect(metrics).toContain('aws_secret_injector_tls_reloads_total{result="reloaded"} 1');
    expect(metrics).toMatch(/^aws_secret_injector_tls_certificate_expiry_timestamp_seconds \d{10}$/m);
    w.child.kill('SIGTERM');
    expect(await w.exit).toBe(0);
  }, 30_000);

  it('with SHUTDOWN_DELAY_SECONDS keeps answering after SIGTERM while reporting not ready, then exits 0', async () => {
    const w = await start({ TLS_CERT_FILE: join(dir, 'tls.crt'), TLS_KEY_FILE: join(dir, 'tls.key'), SHUTDOWN_DELAY_SECONDS: '2' });
    const ca = certs.caCert;
    expect((await call(w.port, { ca, method: 'GET', path: '/readyz' })).status).toBe(200);
    w.child.kill('SIGTERM');
    const end = Date.now() + 5_000;
    while (!w.output().includes('still serving until the delay ends') && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    const ready = await call(w.port, { ca, method: 'GET', path: '/readyz' });
    expect(ready.status).toBe(503);
    const res = await postJson(w.port, ca, podReview({ uid: 'during-delay', annotations: SEED }));
    expect(res.status).toBe(200);
    expect(res.headers.connection).toBe('close');
    expect(res.body).toContain('"uid":"during-delay"');
    expect(await w.exit).toBe(0);
  }, 30_000);

  it('reviews a large pod on a worker thread, with the answer the handler gives in line', { timeout: 60_000 }, async () => {
    const w = await start({ TLS_CERT_FILE: join(dir, 'tls.crt'), TLS_KEY_FILE: join(dir, 'tls.key') });
    const secrets = Array.from({ length: 6_000 }, (_, i) => `- ref: s${i}`).join('\n');
    const body = podReview({ uid: 'large', annotations: { 'secrets.k8s.aws/region': 'us-east-1', 'secrets.k8s.aws/secrets': secrets } });
    expect(JSON.stringify(body).length).toBeGreaterThan(64 * 1024);
    const r = await postJson(w.port, certs.caCert, body);
    expect(r.status).toBe(200);
    const inLine = review(body, DEFAULT_MUTATION_CONFIG);
    expect(inLine.kind).toBe('review');
    if (inLine.kind === 'review') expect(JSON.parse(r.body)).toEqual(JSON.parse(JSON.stringify(inLine.response)));
    // Not JSON, and large: the same 400 as a small body that is not JSON.
    const bad = await call(w.port, { body: `{${'x'.repeat(70 * 1024)}`, ca: certs.caCert, headers: { 'content-type': 'application/json' } });
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body).message).toBe('the request body is not valid JSON');
    w.child.kill('SIGTERM');
    expect(await w.exit).toBe(0);
    // Read once the process has exited: the review's log line may still be in flight before that.
    expect(w.output()).toMatch(/"uid":"large".*"outcome":"injected".*"worker":true/);
  });

  it('serves the probes and metrics on MONITOR_PORT, and no reviews there', { timeout: 30_000 }, async () => {
    const w = await start({ TLS_CERT_FILE: join(dir, 'tls.crt'), TLS_KEY_FILE: join(dir, 'tls.key'), MONITOR_PORT: '0' });
    const end = Date.now() + 10_000;
    let m: RegExpExecArray | null = null;
    while (m === null && Date.now() < end) {
      m = /"port":(\d+),"url":"https:\/\/[^"]+\/healthz","msg":"listening"/.exec(w.output());
      if (m === null) await new Promise((r) => setTimeout(r, 25));
    }
    expect(m).not.toBeNull();
    const monitor = Number(m![1]);
    for (const path of ['/healthz', '/readyz', '/metrics']) expect((await call(monitor, { method: 'GET', path, ca: certs.caCert })).status).toBe(200);
    expect((await postJson(monitor, certs.caCert, podReview({ uid: 'm' }))).status).toBe(404);
    w.child.kill('SIGTERM');
    expect(await w.exit).toBe(0);
  });

  it('on SIGTERM stops accepting connections, finishes the review in flight and exits 0', async () => {
    const w = await start({ TLS_CERT_FILE: join(dir, 'tls.crt'), TLS_KEY_FILE: join(dir, 'tls.key') });
    expect((await postJson(w.port, certs.caCert, podReview({ uid: 'before' }))).status).toBe(200);

    // A review whose body is still arriving when the signal comes.
    const body = JSON.stringify(podReview({ uid: 'in-flight', annotations: SEED }));
    const socket = connect({ host: '127.0.0.1', port: w.port, ca: certs.caCert });
    await new Promise<void>((r, j) => {
      socket.once('secureConnect', () => r());
      socket.once('error', j);
    });
    let answer = '';
    socket.on('data', (c: Buffer) => (answer += c.toString()));
    const closed = new Promise<void>((r) => socket.on('close', () => r()));
    socket.write(
      `POST /mutate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, 100)}`,
    );
    await new Promise((r) => setTimeout(r, 100));
    w.child.kill('SIGTERM');
    const end = Date.now() + 10_000;
    while (!w.output().includes('shutting down') && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    expect(w.output()).toContain('shutting down');
    await new Promise((r) => setTimeout(r, 200));

    // The listener is closed: a new connection is refused.
    await expect(call(w.port, { ca: certs.caCert, method: 'GET', path: '/healthz' })).rejects.toThrow(/ECONNREFUSED|socket hang up|ECONNRESET/);

    socket.write(body.slice(100));
    await closed;
    expect(answer).toMatch(/^HTTP\/1\.1 200/);
    expect(answer).toContain('"uid":"in-flight"');
    expect(answer).toContain('"patchType":"JSONPatch"');
    expect(await w.exit).toBe(0);
    expect(w.output()).toMatch(/"uid":"in-flight".*"outcome":"injected"/);
    expect(w.output()).toContain('"msg":"stopped"');
  }, 40_000);
});
