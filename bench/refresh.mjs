#!/usr/bin/env node
// Footprint of the refresh sidecar, against moto (installed by test/setup/moto.sh) on 127.0.0.1.
// A driver bundled by esbuild from the sidecar's own code (fetcher/refresh.ts with the real AWS
// clients, no node_modules beside it) runs refresh cycles back to back, without the interval's
// wait, for 20 secrets in one BatchGetSecretValue, while this process rotates one of them
// (PutSecretValue) every 50 ms so that cycles also rewrite files. It reports:
//   - resident memory (RSS) after the first fetch and after 10 refreshes;
//   - RSS and the heap after a full GC every 100 cycles over a soak of 1,000 (bounded: at most
//     BENCH_SOAK_SECONDS), and the growth from cycle 100 to the last;
//   - CPU time (user + system) per refresh cycle;
//   - the floor: RSS of `node -e 0` on the same Node.js, measured in the same run.
// Exits 1 when a target below is missed.
//
//   npm run bench:refresh                 (BENCH_CYCLES, BENCH_SOAK_SECONDS)

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CreateSecretCommand, PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { build } from 'esbuild';
import { freePort } from './free-port.mjs';

const TARGETS = {
  rssAfter10MiB: 48,
  // No growth: the heap after a full GC at the end of the soak within this much of cycle 100's.
  heapGrowthMiB: 2,
  rssGrowthMiB: 8,
};

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const root = resolve(import.meta.dirname, '..');
const motoServer = resolve(root, '.cache/bin/moto_server');
const cycles = Math.min(Number(process.env.BENCH_CYCLES ?? 1000), 100_000);
const soakSeconds = Math.min(Number(process.env.BENCH_SOAK_SECONDS ?? 240), 3600);
const region = 'eu-west-1';
if (!existsSync(motoServer)) {
  console.error('moto_server is not installed in .cache/bin: run `npm run test:all` (or `bash test/setup/install.sh`)');
  process.exit(2);
}

const work = mkdtempSync(join(tmpdir(), 'bench-refresh-'));
const cleanups = [() => rmSync(work, { recursive: true, force: true })];
process.on('exit', () => cleanups.splice(0).reverse().forEach((f) => { try { f(); } catch {} }));
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => process.exit(130));

// The driver: the sidecar's Refresher and AWS clients, built as the fetcher bundle is.
const driver = join(work, 'driver.mjs');
await build({
  stdin: {
    resolveDir: root,
    loader: 'ts',
    contents: `
import { createAwsApi } from './fetcher/aws.ts';
import { execute } from './fetcher/main.ts';
import { Refresher } from './fetcher/refresh.ts';
const [spec, cycles, soakMs] = [JSON.parse(process.env.SPEC), Number(process.env.CYCLES), Number(process.env.SOAK_MS)];
const mib = (n) => Math.round((n / 2 ** 20) * 10) / 10;
const source = { kind: 'node' };
const api = () => createAwsApi({ source, sessionName: 'bench', stsRegion: spec.region, callTimeoutMs: 10_000, maxAttempts: 5 });
const first = await execute(spec, { credentials: { source }, api });
if (!first.ok) throw new Error('first fetch failed: ' + JSON.stringify(first.failures));
const out = { afterFetch: mib(process.memoryUsage().rss), samples: [] };
const r = new Refresher(spec, { api: api(), now: Date.now, random: Math.random, sleep: async () => {}, log: () => {} });
await r.resume();
const signal = new AbortController().signal;
const started = Date.now();
const cpu0 = process.cpuUsage();
let done = 0, changed = 0;
const every = Math.max(1, Math.floor(cycles / 10));
for (; done < cycles && Date.now() - started < soakMs; done++) {
  const c = await r.cycle(signal);
  if (!c.ok) throw new Error('refresh failed: ' + c.summary);
  if (c.changed.length > 0) changed++;
  if (done + 1 === 10) out.after10 = mib(process.memoryUsage().rss);
  if ((done + 1) % every === 0) {
    globalThis.gc();
    const m = process.memoryUsage();
    out.samples.push({ cycle: done + 1, rss: mib(m.rss), heap: mib(m.heapUsed), external: mib(m.external) });
  }
}
const cpu = process.cpuUsage(cpu0);
Object.assign(out, { cycles: done, changed, seconds: (Date.now() - started) / 1000, cpuMsPerCycle: Math.round(((cpu.user + cpu.system) / 1000 / done) * 100) / 100 });
process.stdout.write(JSON.stringify(out));
process.exit(0);
`,
  },
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node24',
  outfile: driver,
  mainFields: ['module', 'main'],
  minify: true,
  logLevel: 'warning',
  banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
});

const port = await freePort();
const endpoint = `http://127.0.0.1:${port}`;
const moto = spawn(motoServer, ['-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
cleanups.push(() => moto.exitCode === null && moto.kill('SIGTERM'));
for (let i = 0; ; i++) {
  if (i > 300) throw new Error('moto did not start within 30 s');
  try {
    if ((await fetch(`${endpoint}/moto-api/data.json`)).ok) break;
  } catch {}
  await new Promise((r) => setTimeout(r, 100));
}

const sm = new SecretsManagerClient({ region, endpoint, credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
const names = Array.from({ length: 20 }, (_, i) => `bench/refresh-${i}`);
await Promise.all(names.map((n) => sm.send(new CreateSecretCommand({ Name: n, SecretString: JSON.stringify({ user: 'u', password: `p-${n}` }) }))));
const volume = mkdtempSync(join(work, 'volume-'));
const spec = { version: 1, dir: volume, mode: '0444', region, items: names.map((n, i) => ({ ref: n, file: `s${i}`, key: 'password' })), refresh: { intervalSeconds: 10 } };

// Node.js alone, in the same run: the floor every Node.js process pays.
const floor = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.memoryUsage().rss))'], { encoding: 'utf8' });
const floorMiB = Math.round((Number(floor.stdout) / 2 ** 20) * 10) / 10;

let rotating = true;
const rotations = (async () => {
  for (let i = 0; rotating; i++) {
    await sm.send(new PutSecretValueCommand({ SecretId: names[i % names.length], SecretString: JSON.stringify({ user: 'u', password: `p-${i}` }) }));
    await new Promise((r) => setTimeout(r, 50));
  }
})();
// The sidecar's own Node.js options, as the webhook sets them (BENCH_NODE_FLAGS to try others).
const optionsModule = join(work, 'options.mjs');
await build({ stdin: { resolveDir: root, loader: 'ts', contents: "export { REFRESHER_NODE_OPTIONS } from './fetcher/spec.ts';" }, bundle: true, format: 'esm', outfile: optionsModule, logLevel: 'warning' });
const { REFRESHER_NODE_OPTIONS } = await import(optionsModule);
const nodeFlags = (process.env.BENCH_NODE_FLAGS ?? REFRESHER_NODE_OPTIONS).split(' ').filter(Boolean);
const child = spawnSync(process.execPath, ['--expose-gc', ...nodeFlags, driver], {
  cwd: work,
  encoding: 'utf8',
  timeout: (soakSeconds + 120) * 1000,
  env: {
    PATH: process.env.PATH,
    AWS_ENDPOINT_URL: endpoint,
    AWS_ACCESS_KEY_ID: 'a',
    AWS_SECRET_ACCESS_KEY: 'b',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    SPEC: JSON.stringify(spec),
    CYCLES: String(cycles),
    SOAK_MS: String(soakSeconds * 1000),
    ...(process.env.MALLOC_ARENA_MAX !== undefined && { MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX }),
  },
});
// The sidecar itself, as the image starts it (the snapshot, its Node.js options), after its first
// refresh at the shortest interval: resident memory idle between refreshes.
let sidecarRss;
const blob = resolve(root, process.env.BUNDLE_OUT ?? 'dist', 'fetcher.blob');
if (existsSync(blob)) {
  const dir = mkdtempSync(join(work, 'sidecar-'));
  const env = { PATH: process.env.PATH, AWS_ENDPOINT_URL: endpoint, AWS_ACCESS_KEY_ID: 'a', AWS_SECRET_ACCESS_KEY: 'b', SECRET_INJECTOR_NODE_CREDENTIALS: 'allow', AWS_EC2_METADATA_DISABLED: 'true', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', SECRET_INJECTOR_SPEC: JSON.stringify({ ...spec, dir }) };
  const first = spawnSync(process.execPath, ['--snapshot-blob', blob, 'fetch'], { env, encoding: 'utf8' });
  if (first.status !== 0) throw new Error(`the sidecar's first fetch failed: ${first.stderr}`);
  const sidecar = spawn(process.execPath, ['--snapshot-blob', blob, 'refresh'], { env: { ...env, NODE_OPTIONS: nodeFlags.join(' ') }, stdio: ['ignore', 'ignore', 'pipe'] });
  cleanups.push(() => sidecar.exitCode === null && sidecar.kill('SIGKILL'));
  let log = '';
  sidecar.stderr.on('data', (d) => (log += d));
  for (let i = 0; !/rewrote|failed/.test(log.split('\n').slice(1).join('\n')) && i < 200; i++) await new Promise((r) => setTimeout(r, 100));
  await new Promise((r) => setTimeout(r, 500));
  const status = readFileSync(`/proc/${sidecar.pid}/status`, 'utf8');
  sidecarRss = Math.round((Number(/VmRSS:\s+(\d+)/.exec(status)[1]) / 1024) * 10) / 10;
  sidecar.kill('SIGTERM');
}
rotating = false;
await rotations;
if (child.status !== 0) {
  console.error(`driver failed (${child.status ?? child.signal}): ${child.stderr}`);
  process.exit(1);
}
const r = JSON.parse(child.stdout);
const firstSample = r.samples[0];
const lastSample = r.samples.at(-1);
const heapGrowth = Math.round((lastSample.heap - firstSample.heap) * 10) / 10;
const rssGrowth = Math.round((lastSample.rss - firstSample.rss) * 10) / 10;
console.log(`node ${process.version} ${nodeFlags.join(' ')}; Node.js alone (node -e): ${floorMiB} MiB RSS`);
console.log(`RSS after the first fetch: ${r.afterFetch} MiB; after 10 refreshes of 20 secrets: ${r.after10} MiB (${Math.round((r.after10 - floorMiB) * 10) / 10} MiB above Node.js alone)`);
console.log(`soak: ${r.cycles} cycles in ${r.seconds} s (${r.changed} rewrote files); after a full GC, cycle ${firstSample.cycle} -> ${lastSample.cycle}: heap ${firstSample.heap} -> ${lastSample.heap} MiB, RSS ${firstSample.rss} -> ${lastSample.rss} MiB`);
console.log(`samples (cycle: RSS/heap/external MiB): ${r.samples.map((s) => `${s.cycle}: ${s.rss}/${s.heap}/${s.external}`).join(', ')}`);
console.log(`CPU per refresh cycle (user + system): ${r.cpuMsPerCycle} ms`);
if (sidecarRss !== undefined) console.log(`the sidecar as the image starts it (snapshot), after its first refresh: ${sidecarRss} MiB RSS`);
writeFileSync(join(work, 'result.json'), child.stdout);

const missed = [];
if (r.after10 > TARGETS.rssAfter10MiB) missed.push(`RSS after 10 refreshes ${r.after10} MiB > ${TARGETS.rssAfter10MiB} MiB`);
if (heapGrowth > TARGETS.heapGrowthMiB) missed.push(`heap grew ${heapGrowth} MiB over the soak (> ${TARGETS.heapGrowthMiB})`);
if (rssGrowth > TARGETS.rssGrowthMiB) missed.push(`RSS grew ${rssGrowth} MiB over the soak (> ${TARGETS.rssGrowthMiB})`);
if (r.cycles < 200) missed.push(`only ${r.cycles} cycles in ${soakSeconds} s`);
if (missed.length > 0) {
  console.error(`missed: ${missed.join('; ')}`);
  process.exit(1);
}
