#!/usr/bin/env node
// Size and cold start of the built fetcher (`<bundle>/fetcher.mjs`): the bundle's bytes (raw and
// gzipped), and the time from spawning `node fetcher.mjs fetch` to the marker file appearing,
// against moto (installed by test/setup/moto.sh) on 127.0.0.1, with 1 and with 25 secrets. The
// bundle runs from a temp directory with no node_modules, as in the image. Every loop is bounded.
// Exits 1 when a target below is missed.
//
//   npm run build && npm run bench:fetcher            (BUNDLE_OUT=<dir> to use another build)
//   BENCH_RUNS=10 npm run bench:fetcher

import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, watch } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { BatchGetSecretValueCommand, CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';

// Targets for the project's reference machine (2 cores), against a local emulator: what the
// fetcher itself adds to a pod's start, network to AWS excluded.
const TARGETS = {
  bundleKiB: 600,
  coldStartP50Ms: 1000, // 1 secret
  coldStart25P50Ms: 1500, // 25 secrets, two BatchGetSecretValue calls
};

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const root = resolve(import.meta.dirname, '..');
const bundle = resolve(root, process.env.BUNDLE_OUT ?? 'dist', 'fetcher.mjs');
const motoServer = resolve(root, '.cache/bin/moto_server');
const runs = Math.min(Number(process.env.BENCH_RUNS ?? 10), 100);
const region = 'eu-west-1';

if (!existsSync(bundle)) {
  console.error(`${bundle} is missing: run npm run build first`);
  process.exit(2);
}
if (!existsSync(motoServer)) {
  console.error('moto_server is not installed in .cache/bin: run `npm run test:all` (or `bash test/setup/install.sh`)');
  process.exit(2);
}

const freePort = () =>
  new Promise((res, rej) => {
    const s = createServer();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });

const port = await freePort();
const endpoint = `http://127.0.0.1:${port}`;
const moto = spawn(motoServer, ['-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
const stopMoto = () => moto.exitCode === null && moto.kill('SIGTERM');
process.on('exit', stopMoto);
for (let i = 0; ; i++) {
  if (i > 300) throw new Error('moto did not start within 30 s');
  try {
    if ((await fetch(`${endpoint}/moto-api/data.json`)).ok) break;
  } catch {}
  await new Promise((r) => setTimeout(r, 100));
}

const sm = new SecretsManagerClient({ region, endpoint, credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
const names = Array.from({ length: 25 }, (_, i) => `bench/secret-${i}`);
await Promise.all(names.map((n) => sm.send(new CreateSecretCommand({ Name: n, SecretString: JSON.stringify({ user: 'u', password: `p-${n}` }) }))));
// Warm the emulator's code paths so the first measured run is not moto's own cold start.
await sm.send(new BatchGetSecretValueCommand({ SecretIdList: names.slice(0, 2) }));

const work = mkdtempSync(join(tmpdir(), 'bench-fetcher-'));
copyFileSync(bundle, join(work, 'fetcher.mjs'));

/** ms from spawn to the marker file appearing (the process is still exiting then). */
async function coldStart(count) {
  const dir = mkdtempSync(join(work, 'volume-'));
  const spec = { version: 1, dir: '/tmp', mode: '0444', region, items: names.slice(0, count).map((n, i) => ({ ref: n, file: `s${i}` })) };
  let marker;
  const watcher = watch(dir, (_event, file) => {
    if (file === '.secrets-ready' && marker === undefined && existsSync(join(dir, file))) marker = performance.now();
  });
  const started = performance.now();
  const child = spawn(process.execPath, [join(work, 'fetcher.mjs'), 'fetch', '--dir', dir], {
    cwd: work,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: {
      PATH: process.env.PATH,
      AWS_ENDPOINT_URL: endpoint,
      AWS_ACCESS_KEY_ID: 'a',
      AWS_SECRET_ACCESS_KEY: 'b',
      // Static keys keep STS out of the measurement; the fetcher takes them only with this opt-in.
      SECRET_INJECTOR_NODE_CREDENTIALS: 'allow',
      AWS_EC2_METADATA_DISABLED: 'true',
      SECRET_INJECTOR_SPEC: JSON.stringify(spec),
      SECRET_INJECTOR_TERMINATION_LOG: join(dir, '..', 'termination'),
    },
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise((r) => child.on('close', r));
  const exited = performance.now();
  watcher.close();
  if (code !== 0) throw new Error(`fetcher exited ${code}: ${stderr}`);
  if (!existsSync(join(dir, '.secrets-ready'))) throw new Error('no marker file');
  rmSync(dir, { recursive: true, force: true });
  return { marker: (marker ?? exited) - started, exit: exited - started };
}

const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))];
const results = {};
for (const count of [1, 25]) {
  const samples = [];
  for (let i = 0; i < runs; i++) samples.push(await coldStart(count));
  results[count] = {
    p50: pct(samples.map((s) => s.marker), 50),
    p90: pct(samples.map((s) => s.marker), 90),
    exitP50: pct(samples.map((s) => s.exit), 50),
  };
}
const nodeOnly = [];
for (let i = 0; i < Math.min(runs, 5); i++) {
  const t = performance.now();
  await new Promise((r) => spawn(process.execPath, ['-e', '0']).on('close', r));
  nodeOnly.push(performance.now() - t);
}
stopMoto();
rmSync(work, { recursive: true, force: true });

const raw = readFileSync(bundle);
const kib = raw.length / 1024;
const gz = gzipSync(raw).length / 1024;
const f = (n) => n.toFixed(0);
console.log(`fetcher bundle: ${raw.length} bytes (${f(kib)} KiB), ${f(gz)} KiB gzipped`);
console.log(`node -e 0 alone: p50 ${f(pct(nodeOnly, 50))} ms`);
for (const [count, r] of Object.entries(results)) {
  console.log(`cold start, ${count} secret(s), process start -> marker: p50 ${f(r.p50)} ms, p90 ${f(r.p90)} ms (process exit p50 ${f(r.exitP50)} ms; ${runs} runs)`);
}
const missed = [];
if (kib > TARGETS.bundleKiB) missed.push(`bundle ${f(kib)} KiB > ${TARGETS.bundleKiB} KiB`);
if (results[1].p50 > TARGETS.coldStartP50Ms) missed.push(`cold start p50 ${f(results[1].p50)} ms > ${TARGETS.coldStartP50Ms} ms`);
if (results[25].p50 > TARGETS.coldStart25P50Ms) missed.push(`25-secret cold start p50 ${f(results[25].p50)} ms > ${TARGETS.coldStart25P50Ms} ms`);
if (missed.length > 0) {
  console.error(`targets missed:\n  ${missed.join('\n  ')}`);
  process.exit(1);
}
console.log('all targets met');
