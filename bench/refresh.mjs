#!/usr/bin/env node
// Footprint of the refresh sidecar, against moto (installed by test/setup/moto.sh) on 127.0.0.1,
// as Kubernetes charges it: the working set of its memory cgroup (usage − total_inactive_file,
// what `kubectl top` shows and eviction looks at; a cgroup v1 group of the bench's own, root only).
// As in a pod, it reaches AWS over TLS under the real host names with IRSA's identity: moto behind
// the TLS front of bench/aws-front.mjs, in a private network namespace the script re-runs in
// (elsewhere through AWS_ENDPOINT_URL, which it says), the secrets volume a tmpfs.
//   - The soak: a driver bundled by esbuild from the sidecar's own code (fetcher/refresh.ts with
//     the real AWS clients, built as fetcher.cjs is, no node_modules beside it) and compiled by Bun
//     as the fetcher's executable is, in its own memory cgroup with the sidecar's environment
//     (REFRESHER_ENV), runs refresh cycles back to back, without the
//     interval's wait, for 20 secrets in one BatchGetSecretValue, while this process rotates one
//     of them (PutSecretValue) every 50 ms so that cycles also rewrite files. Every tenth of the
//     1,000 cycles (bounded: at most BENCH_SOAK_SECONDS) it reads its working set, then the heap
//     after a full GC, and RSS; the growth from the first sample to the last says whether it is flat.
//   - The sidecar as the image starts it (the executable, REFRESHER_ENV), in its own memory
//     cgroup: its working set idle after each of its first BENCH_SIDECAR_REFRESHES (2) refreshes
//     at the shortest interval, its cgroup's peak and RSS.
//   - CPU time (user + system) per refresh cycle; RSS after the first fetch and after 10 refreshes,
//     and the floor, RSS of `node -e 0`, for profiling.
// Without a memory cgroup (not root, no cgroup v1) it says so and checks RSS growth instead.
// Exits 1 when a target below is missed.
//
//   npm run build && npm run bench:refresh      (BENCH_CYCLES, BENCH_SOAK_SECONDS, BENCH_SIDECAR_REFRESHES)

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CreateSecretCommand, PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { build } from 'esbuild';
import { bunPath } from '../scripts/bun.mjs';
import { enterNamespace, irsaEnv, secretsVolumes, startAwsFront } from './aws-front.mjs';
import { memoryCgroup, memoryCgroupUnavailable } from './memory-cgroup.mjs';

const TARGETS = {
  // The working set (memory cgroup usage − inactive file) of the sidecar and of the soak's process.
  workingSetMiB: 24,
  // No growth: cycle 100 to the last, the working set (before a GC) and the heap after a full GC.
  workingSetGrowthMiB: 2,
  heapGrowthMiB: 2,
  // Without a memory cgroup (not root), RSS stands in.
  rssGrowthMiB: 8,
};

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const root = resolve(import.meta.dirname, '..');
const motoServer = resolve(root, '.cache/bin/moto_server');
const cycles = Math.min(Number(process.env.BENCH_CYCLES ?? 1000), 100_000);
const soakSeconds = Math.min(Number(process.env.BENCH_SOAK_SECONDS ?? 240), 3600);
const sidecarRefreshes = Math.max(1, Math.min(Number(process.env.BENCH_SIDECAR_REFRESHES ?? 2), 30));
const region = 'eu-west-1';
const { inNamespace, note: namespaceNote } = enterNamespace();
if (!existsSync(motoServer)) {
  console.error('moto_server is not installed in .cache/bin: run `npm run test:all` (or `bash test/setup/install.sh`)');
  process.exit(2);
}

const work = mkdtempSync(join(tmpdir(), 'bench-refresh-'));
const cleanups = [() => rmSync(work, { recursive: true, force: true })];
process.on('exit', () => cleanups.splice(0).reverse().forEach((f) => { try { f(); } catch {} }));
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => process.exit(130));

// The driver: the sidecar's Refresher and AWS clients, built as the fetcher bundle is (CommonJS,
// minified, the SDK's ES modules).
const driver = join(work, 'driver.cjs');
await build({
  stdin: {
    resolveDir: root,
    loader: 'ts',
    contents: `
import { createAwsApi } from './fetcher/aws.ts';
import { execute } from './fetcher/main.ts';
import { Refresher } from './fetcher/refresh.ts';
import { readFileSync } from 'node:fs';
(async () => {
const [spec, cycles, soakMs] = [JSON.parse(process.env.SPEC), Number(process.env.CYCLES), Number(process.env.SOAK_MS)];
const mib = (n) => Math.round((n / 2 ** 20) * 10) / 10;
// The working set of this process's memory cgroup (the bench's own group, MEMCG), before any forced GC.
const workingSet = () => {
  if (!process.env.MEMCG) return NaN;
  const usage = Number(readFileSync(process.env.MEMCG + '/memory.usage_in_bytes', 'utf8'));
  const inactive = Number(/total_inactive_file (\\d+)/.exec(readFileSync(process.env.MEMCG + '/memory.stat', 'utf8'))[1]);
  return mib(usage - inactive);
};
const source = { kind: 'web-identity', roleArn: process.env.AWS_ROLE_ARN, tokenFile: process.env.AWS_WEB_IDENTITY_TOKEN_FILE };
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
    const ws = workingSet();
    Bun.gc(true);
    const m = process.memoryUsage();
    out.samples.push({ cycle: done + 1, rss: mib(m.rss), heap: mib(m.heapUsed), external: mib(m.external), ws });
  }
}
const cpu = process.cpuUsage(cpu0);
Object.assign(out, { cycles: done, changed, seconds: (Date.now() - started) / 1000, cpuMsPerCycle: Math.round(((cpu.user + cpu.system) / 1000 / done) * 100) / 100 });
process.stdout.write(JSON.stringify(out));
process.exit(0);
})();
`,
  },
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node24',
  outfile: driver,
  mainFields: ['module', 'main'],
  minify: true,
  logLevel: 'warning',
});

const aws = await startAwsFront({ work, region, inNamespace, motoServer });
cleanups.push(() => aws.close());
const sm = new SecretsManagerClient({ region, endpoint: aws.motoUrl, credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
const names = Array.from({ length: 20 }, (_, i) => `bench/refresh-${i}`);
await Promise.all(names.map((n) => sm.send(new CreateSecretCommand({ Name: n, SecretString: JSON.stringify({ user: 'u', password: `p-${n}` }) }))));
// The secrets volume: a tmpfs, as a pod's memory-backed emptyDir.
const secretsTmpfs = secretsVolumes(work, inNamespace);
cleanups.push(secretsTmpfs.unmount);
const notes = [...(namespaceNote ? [`${namespaceNote}: AWS through ${aws.env.AWS_ENDPOINT_URL}`] : []), ...(secretsTmpfs.note ? [secretsTmpfs.note] : [])];
const volumes = secretsTmpfs.dir;
const volume = mkdtempSync(join(volumes, 'volume-'));
const spec = { version: 1, dir: volume, mode: '0444', region, items: names.map((n, i) => ({ ref: n, file: `s${i}`, key: 'password' })), refresh: { intervalSeconds: 10 } };
// What a pod's fetcher and sidecar get with IRSA.
const podEnv = { ...irsaEnv({ work, region, front: aws }), AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };

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
// The sidecar's own environment, as the webhook sets it.
const optionsModule = join(work, 'options.mjs');
await build({ stdin: { resolveDir: root, loader: 'ts', contents: "export { REFRESHER_ENV } from './fetcher/spec.ts';" }, bundle: true, format: 'esm', outfile: optionsModule, logLevel: 'warning' });
const { REFRESHER_ENV } = await import(optionsModule);
const compiledDriver = `${driver}.bin`;
const compiling = spawnSync(bunPath(), ['build', '--compile', '--bytecode', driver, '--outfile', compiledDriver], { encoding: 'utf8' });
if (compiling.status !== 0) throw new Error(`compiling the soak's driver failed: ${compiling.stderr}`);
// Each process in a memory cgroup of its own (root, cgroup v1), as a container is: its working set
// is what Kubernetes charges the pod.
const noCgroup = memoryCgroupUnavailable();
const groups = [];
const group = (name) => {
  if (noCgroup) return undefined;
  const g = memoryCgroup(`bench-refresh-${process.pid}-${name}`);
  groups.push(g);
  cleanups.push(() => g.remove());
  return g;
};
/** Runs argv to its end (asynchronously: the TLS front is served by this process); its status, stdout and stderr. */
const run = (argv, env, timeoutMs) =>
  new Promise((res) => {
    const p = spawn(argv[0], argv.slice(1), { cwd: work, env, stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (status, signal) => res({ status, signal, stdout, stderr }));
  });
const soakGroup = group('soak');
const driverArgv = [compiledDriver];
const child = await run(soakGroup ? soakGroup.joinArgs(driverArgv) : driverArgv, {
  ...podEnv,
  SPEC: JSON.stringify(spec),
  CYCLES: String(cycles),
  SOAK_MS: String(soakSeconds * 1000),
  ...(soakGroup && { MEMCG: soakGroup.dir }),
  ...REFRESHER_ENV,
}, (soakSeconds + 120) * 1000);
const soakPeak = soakGroup?.peakMiB();
// The sidecar itself, as the image starts it (the executable, its environment), idle after each of
// its first refreshes at the shortest interval: its working set, resident memory and cgroup peak.
let sidecar;
const entry = resolve(root, process.env.BUNDLE_OUT ?? 'dist', 'fetcher');
if (existsSync(entry)) {
  const dir = mkdtempSync(join(volumes, 'sidecar-'));
  const env = { ...podEnv, SECRET_INJECTOR_SPEC: JSON.stringify({ ...spec, dir }) };
  const first = await run([entry, 'fetch'], env, 60_000);
  if (first.status !== 0) throw new Error(`the sidecar's first fetch failed: ${first.stderr}`);
  const g = group('sidecar');
  const argv = [entry, 'refresh'];
  const full = g ? g.joinArgs(argv) : argv;
  const proc = spawn(full[0], full.slice(1), { env: { ...env, ...REFRESHER_ENV }, stdio: ['ignore', 'ignore', 'pipe'] });
  cleanups.push(() => proc.exitCode === null && proc.kill('SIGKILL'));
  let log = '';
  proc.stderr.on('data', (d) => (log += d));
  sidecar = { ws: [], rss: [] };
  for (let n = 1; n <= sidecarRefreshes; n++) {
    const refreshes = () => log.split('\n').slice(1).filter((l) => /rewrote|unchanged|failed/.test(l)).length;
    for (let i = 0; refreshes() < n && i < 250; i++) await new Promise((r) => setTimeout(r, 100));
    if (/failed/.test(log)) throw new Error(`the sidecar's refresh failed: ${log}`);
    await new Promise((r) => setTimeout(r, 500));
    const status = readFileSync(`/proc/${proc.pid}/status`, 'utf8');
    sidecar.rss.push(Math.round((Number(/VmRSS:\s+(\d+)/.exec(status)[1]) / 1024) * 10) / 10);
    if (g) sidecar.ws.push(Math.round(g.workingSetMiB() * 10) / 10);
  }
  if (g) sidecar.peak = Math.round(g.peakMiB() * 10) / 10;
  proc.kill('SIGTERM');
  await new Promise((r) => (proc.exitCode === null ? proc.on('exit', r) : r()));
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
const round1 = (n) => Math.round(n * 10) / 10;
const heapGrowth = round1(lastSample.heap - firstSample.heap);
const rssGrowth = round1(lastSample.rss - firstSample.rss);
const wsGrowth = round1(lastSample.ws - firstSample.ws);
const wsMax = Math.max(...r.samples.map((x) => x.ws));
console.log(`the fetcher's executable, ${Object.entries(REFRESHER_ENV).map(([k, v]) => `${k}=${v}`).join(' ')}; Node.js alone (node -e): ${floorMiB} MiB RSS`);
console.log(`AWS: moto behind a TLS front, ${aws.where}; identity: IRSA`);
for (const n of notes) console.log(`note: ${n}`);
if (noCgroup) console.log(`note: ${noCgroup}: no memory cgroup, so no working set; RSS only`);
console.log(`RSS after the first fetch: ${r.afterFetch} MiB; after 10 refreshes of 20 secrets: ${r.after10} MiB (${round1(r.after10 - floorMiB)} MiB above Node.js alone)`);
console.log(`soak: ${r.cycles} cycles in ${r.seconds} s (${r.changed} rewrote files); cycle ${firstSample.cycle} -> ${lastSample.cycle}: working set ${firstSample.ws} -> ${lastSample.ws} MiB (largest ${wsMax}, cgroup peak ${soakPeak === undefined ? '–' : round1(soakPeak)} MiB); after a full GC heap ${firstSample.heap} -> ${lastSample.heap} MiB, RSS ${firstSample.rss} -> ${lastSample.rss} MiB`);
console.log(`samples (cycle: working set/RSS/heap/external MiB): ${r.samples.map((x) => `${x.cycle}: ${x.ws}/${x.rss}/${x.heap}/${x.external}`).join(', ')}`);
console.log(`CPU per refresh cycle (user + system): ${r.cpuMsPerCycle} ms`);
if (sidecar !== undefined) {
  console.log(
    `the sidecar as the image starts it, idle after each of its first ${sidecar.rss.length} refreshes: working set ${sidecar.ws.join(', ') || '–'} MiB, RSS ${sidecar.rss.join(', ')} MiB; cgroup peak ${sidecar.peak ?? '–'} MiB`,
  );
}
writeFileSync(join(work, 'result.json'), child.stdout);

const missed = [];
if (heapGrowth > TARGETS.heapGrowthMiB) missed.push(`heap grew ${heapGrowth} MiB over the soak (> ${TARGETS.heapGrowthMiB})`);
if (!noCgroup) {
  if (wsGrowth > TARGETS.workingSetGrowthMiB) missed.push(`working set grew ${wsGrowth} MiB over the soak (> ${TARGETS.workingSetGrowthMiB})`);
  if (wsMax > TARGETS.workingSetMiB) missed.push(`soak working set ${wsMax} MiB > ${TARGETS.workingSetMiB} MiB`);
  const sidecarWs = Math.max(...(sidecar?.ws ?? []));
  if (sidecar !== undefined && sidecarWs > TARGETS.workingSetMiB) missed.push(`the sidecar's working set ${sidecarWs} MiB > ${TARGETS.workingSetMiB} MiB`);
} else if (rssGrowth > TARGETS.rssGrowthMiB) missed.push(`RSS grew ${rssGrowth} MiB over the soak (> ${TARGETS.rssGrowthMiB})`);
if (r.cycles < 200) missed.push(`only ${r.cycles} cycles in ${soakSeconds} s`);
if (missed.length > 0) {
  console.error(`missed: ${missed.join('; ')}`);
  process.exit(1);
}
process.exit(0);
