// Certificate reload under load: the files are replaced the way the kubelet updates a mounted
// Secret (a new timestamped directory, then an atomic swap of the `..data` symlink) while a stream
// of reviews runs over fresh connections. No review may fail, and new connections must present
// the new certificate without a restart.

import { mkdtemp, mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateCertificates, type CertificateBundle } from '../../certs/generate.js';
import { WebhookMetrics } from '../../webhook/metrics.js';
import { buildServer, setServingPair, type WebhookServer } from '../../webhook/server.js';
import { checkPair, TlsReloader } from '../../webhook/tls.js';
import { DEFAULT_MUTATION_CONFIG, type ReviewHandler } from '../../webhook/types.js';
import { call, podReview, postJson } from './server-client.js';

const review: ReviewHandler = (body) => {
  const uid = (body as { request: { uid: string } }).request.uid;
  return {
    kind: 'review',
    response: { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid, allowed: true } },
    log: { uid, dryRun: false, outcome: 'skipped', warnings: 0 },
  };
};

const sans = { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] };
const first = generateCertificates(sans);
// The second certificate comes from a new CA, as after a CA rotation; clients trust both.
const second = generateCertificates(sans);
// The third is a renewal under the second CA.
const third = generateCertificates({ ...sans, ca: { cert: second.caCert, key: second.caKey } });
const ca = [first.caCert, second.caCert];
const fingerprint = (b: CertificateBundle): string => checkPair(b.cert, b.key).fingerprint;

/** Writes the pair the way the kubelet's atomic writer does; returns nothing until ..data points at it. */
async function kubeletWrite(dir: string, bundle: CertificateBundle, generation: number): Promise<void> {
  const data = join(dir, `..2026_01_01_00_00_0${generation}.000000000`);
  await mkdir(data);
  await writeFile(join(data, 'tls.crt'), bundle.cert);
  await writeFile(join(data, 'tls.key'), bundle.key, { mode: 0o600 });
  await symlink(data.slice(dir.length + 1), join(dir, '..data_tmp'));
  await rename(join(dir, '..data_tmp'), join(dir, '..data'));
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

let dir: string;
let app: WebhookServer;
let port: number;
let reloader: TlsReloader;
const results: Array<'reloaded' | 'invalid'> = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tls-reload-'));
  await kubeletWrite(dir, first, 1);
  await symlink('..data/tls.crt', join(dir, 'tls.crt'));
  await symlink('..data/tls.key', join(dir, 'tls.key'));
  const logger = pino({ level: 'silent' });
  const pair = checkPair(first.cert, first.key);
  app = buildServer({ mutation: DEFAULT_MUTATION_CONFIG }, { review, logger, metrics: new WebhookMetrics({ processMetrics: false }), tls: pair });
  await app.listen({ host: '127.0.0.1', port: 0 });
  port = (app.server.address() as { port: number }).port;
  reloader = new TlsReloader({
    certFile: join(dir, 'tls.crt'),
    keyFile: join(dir, 'tls.key'),
    current: pair,
    apply: (next) => setServingPair(app, next),
    log: logger,
    onResult: (r) => results.push(r),
    // Long enough that the reloads below come from directory events, not from the poll.
    pollMs: 60_000,
    debounceMs: 50,
  });
  reloader.start();
});

afterAll(async () => {
  reloader.close();
  await app.close();
  await rm(dir, { recursive: true, force: true });
});

const presented = async (): Promise<string> => (await call(port, { ca, method: 'GET', path: '/healthz' })).fingerprint;

describe('TLS reload', () => {
  it('swaps certificates under a stream of reviews with zero failures; new connections get the new certificate', async () => {
    expect(await presented()).toBe(fingerprint(first));
    let stop = false;
    let ok = 0;
    const failures: string[] = [];
    const seen = new Set<string>();
    const keepAlive = new Agent({ keepAlive: true, maxSockets: 1 });
    // Bounded in count and time: each worker stops at the flag or after 4000 requests.
    const worker = async (id: number, agent?: Agent): Promise<void> => {
      for (let i = 0; i < 4000 && !stop; i++) {
        const uid = `w${id}-${i}`;
        try {
          const res = await postJson(port, ca, podReview({ uid }), agent);
          const body = JSON.parse(res.body) as { response?: { uid?: string; allowed?: boolean } };
          if (res.status !== 200 || body.response?.uid !== uid || body.response.allowed !== true) failures.push(`${uid}: ${res.status}`);
          else ok++;
          seen.add(res.fingerprint);
        } catch (e) {
          failures.push(`${uid}: ${(e as Error).message}`);
        }
      }
    };
    const workers = [worker(1), worker(2), worker(3), worker(4, keepAlive)];

    await new Promise((r) => setTimeout(r, 200));
    await kubeletWrite(dir, second, 2);
    await until('the second certificate', async () => (await presented()) === fingerprint(second));
    await new Promise((r) => setTimeout(r, 200));
    await kubeletWrite(dir, third, 3);
    await until('the third certificate', async () => (await presented()) === fingerprint(third));
    await new Promise((r) => setTimeout(r, 200));
    stop = true;
    await Promise.all(workers);
    keepAlive.destroy();

    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(50);
    // Fresh connections during the run saw all three certificates.
    expect(seen).toEqual(new Set([fingerprint(first), fingerprint(second), fingerprint(third)]));
    expect(results.filter((r) => r === 'reloaded').length).toBeGreaterThanOrEqual(2);
  }, 30_000);

  it('keeps the current certificate while the files do not form a valid pair, then takes the fixed pair', async () => {
    const before = await presented();
    // A hand edit: the certificate is replaced in place first, the key a moment later.
    const data = join(dir, '..data');
    const next = generateCertificates({ ...sans, ca: { cert: first.caCert, key: first.caKey } });
    await writeFile(join(data, 'tls.crt'), next.cert);
    await until('the mismatch to be noticed', async () => results.at(-1) === 'invalid');
    expect(await presented()).toBe(before);
    const res = await postJson(port, ca, podReview({ uid: 'during-mismatch' }));
    expect(res.status).toBe(200);
    await writeFile(join(data, 'tls.key'), next.key);
    await until('the fixed pair', async () => (await presented()) === fingerprint(next));
  }, 30_000);
});
