#!/usr/bin/env node
// A fleet against AWS's quotas: thousands of pods starting at once, and a fleet of refresh
// sidecars, each pod running the fetcher's own code (bench/fleet-driver.ts: `execute` and
// `Refresher` with the SDK clients, retry strategy, batching and timeouts of `run`), against a
// local stand-in for AWS (test/helpers/aws-standin.ts) that holds every API to its published quota
// as a token bucket per account and Region and answers a throttled call as AWS does, after a
// log-normal latency. The stand-in runs on one core, the pods on the other (taskset), both built
// by esbuild from the sources.
//
// Scaled, and how: one process cannot run 5,000 pods in real time on two cores, so a start
// scenario runs pods/FLEET_SCALE pods against quotas/FLEET_SCALE (default 20: 250 pods, a
// GetSecretValue quota of 500/s). Each quota's bucket holds one second of its scaled rate, so
// the scaled fleet sees burstier arrivals than the real one would: throttling is overstated, not
// understated. Each start scenario runs a second time with no quota at all: that floor is what
// the machine itself takes to run the pods. Each pod does what it would; the load each quota sees, and so
// the throttling and the waiting, is the fleet's. A refresh scenario also compresses time: an
// interval of 5 min runs as 5 min / FLEET_TIME_SCALE (default 30: 10 s, an hour in 2 min), with
// pods/FLEET_REFRESH_SCALE pods (default 20) against quotas × TIME_SCALE / REFRESH_SCALE, so the
// call rate against each quota is the fleet's; calls are scaled back up for the cost.
//
// Exits 1 when a target is missed: no failed pod anywhere; 5,000 pods × 20 secrets ready within
// 30 s (p99), × 1 within 15 s; the refresh of 10,000 × 20 every 5 min at most 1.2 times the
// cheapest number of calls.
//
//   npm run bench:fleet                      (FLEET_SCALE, FLEET_TIME_SCALE, FLEET_REFRESH_SCALE,
//                                             FLEET_ONLY=sm-20,refresh to run some scenarios)

import { fork, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { DOLLARS_PER_CALL, QUOTAS, refreshCallsPerMonth, SECONDS_PER_MONTH } from '../fetcher/quotas.ts';

const root = resolve(import.meta.dirname, '..');
const scale = Math.max(1, Number(process.env.FLEET_SCALE ?? 20));
const timeScale = Math.max(1, Number(process.env.FLEET_TIME_SCALE ?? 30));
const refreshScale = Math.max(1, Number(process.env.FLEET_REFRESH_SCALE ?? 20));
const only = process.env.FLEET_ONLY?.split(',');
const HOURS_PER_MONTH = SECONDS_PER_MONTH / 3600;

const TARGETS = { startP99Ms: { 1: 15_000, 20: 30_000 }, refreshOverCheapest: 1.2 };

const SCENARIOS = [
  { id: 'sm-1', kind: 'start', service: 'secretsmanager', pods: 5_000, secrets: 1, rolloutMs: 10_000 },
  { id: 'sm-20', kind: 'start', service: 'secretsmanager', pods: 5_000, secrets: 20, rolloutMs: 10_000 },
  { id: 'ssm-1', kind: 'start', service: 'ssm', pods: 5_000, secrets: 1, rolloutMs: 10_000 },
  { id: 'ssm-20', kind: 'start', service: 'ssm', pods: 5_000, secrets: 20, rolloutMs: 10_000 },
  { id: 'refresh', kind: 'refresh', service: 'secretsmanager', pods: 10_000, secrets: 20, rolloutMs: 10_000, intervalMs: 300_000, durationMs: 3_600_000 },
].filter((s) => only === undefined || only.includes(s.id));

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
// Memory-backed like the pods' emptyDir volumes, where the machine has one.
const work = mkdtempSync(join(process.env.FLEET_TMP ?? (existsSync('/dev/shm') ? '/dev/shm' : tmpdir()), 'bench-fleet-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => process.exit(130));

// --- the two programs, from the sources ---
const common = { bundle: true, platform: 'node', target: 'node24', format: 'esm', logLevel: 'warning', mainFields: ['module', 'main'] };
const banner = { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" };
await build({ ...common, banner, entryPoints: { driver: join(root, 'bench/fleet-driver.ts') }, outdir: work, outExtension: { '.js': '.mjs' } });
await build({
  ...common,
  banner,
  stdin: {
    resolveDir: root,
    loader: 'ts',
    contents: `
import { startAwsStandIn } from './test/helpers/aws-standin.ts';
const s = await startAwsStandIn({ quotas: JSON.parse(process.env.STANDIN_QUOTAS) });
process.send({ endpoint: s.endpoint });
const cpu0 = process.cpuUsage(), t0 = performance.now();
process.on('message', (m) => {
  const c = process.cpuUsage(cpu0);
  if (m === 'stats') process.send({ stats: s.stats(), cpu: (c.user + c.system) / 1000 / (performance.now() - t0) });
});
`,
  },
  outfile: join(work, 'standin.mjs'),
});

// --- CPUs: the stand-in on the first, the pods on the last ---
const cpus = availableParallelism();
const pin = cpus >= 2 && spawnSync('sh', ['-c', 'command -v taskset'], { stdio: 'ignore' }).status === 0;

/** A Node.js child on one CPU (taskset execs node, which finds the IPC channel fork set up). */
function child(cpu, script, env) {
  const opts = { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit', 'ipc'] };
  if (!pin) return fork(script, [], opts);
  return fork(script, [], { ...opts, execPath: 'taskset', execArgv: ['-c', String(cpu), process.execPath] });
}

const once = (proc, pick) =>
  new Promise((res, rej) => {
    const on = (m) => {
      const v = pick(m);
      if (v !== undefined) {
        proc.off('message', on);
        res(v);
      }
    };
    proc.on('message', on);
    proc.once('exit', (code) => rej(new Error(`the stand-in exited ${code}`)));
  });

const pct = (sorted, p) => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]);
const sec = (ms) => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(1)} s` : '–');
const int = (n) => Math.round(n).toLocaleString('en-US');

async function run(s, floor = false) {
  const refresh = s.kind === 'refresh';
  const k = refresh ? refreshScale : scale;
  const t = refresh ? timeScale : 1;
  const pods = Math.max(1, Math.round(s.pods / k));
  // Quotas as the fleet sees them: divided like the pods, multiplied like time is compressed.
  // SSM with the higher-throughput setting: at the standard 40/s, 5,000 pods cannot start within the default deadline.
  const quotaOf = (api) => (s.service === 'ssm' ? (QUOTAS[api].higher ?? QUOTAS[api].perSecond) : QUOTAS[api].perSecond);
  const quotas = Object.fromEntries(Object.keys(QUOTAS).map((api) => [api, floor ? 1e9 : (quotaOf(api) * t) / k]));
  const standin = child(0, join(work, 'standin.mjs'), { STANDIN_QUOTAS: JSON.stringify(quotas) });
  const { endpoint } = await once(standin, (m) => m);
  const dir = mkdtempSync(join(work, `${s.id}-`));
  const scenario = { ...s, pods, dir, rolloutMs: s.rolloutMs / t, intervalMs: s.intervalMs && s.intervalMs / t, durationMs: s.durationMs && s.durationMs / t };
  const driver = child(cpus - 1, join(work, 'driver.mjs'), { FLEET_SCENARIO: JSON.stringify(scenario), AWS_ENDPOINT_URL: endpoint, AWS_REGION: 'eu-west-1' });
  let out = '';
  driver.stdout.on('data', (c) => (out += c));
  const code = await new Promise((r) => driver.once('exit', r));
  standin.send('stats');
  const { stats, cpu: standinCpu } = await once(standin, (m) => m.stats && m);
  standin.kill();
  rmSync(dir, { recursive: true, force: true });
  if (code !== 0) throw new Error(`the pods of ${s.id} exited ${code}`);
  const r = JSON.parse(out.trim().split('\n').pop());
  const ready = r.ready.sort((a, b) => a - b);
  const calls = Object.values(stats).reduce((n, x) => n + x.calls, 0);
  const throttled = Object.values(stats).reduce((n, x) => n + x.throttled, 0);
  const row = { ...s, simulatedPods: pods, k, t, quotas, ready, stats, calls, throttled, standinCpu, ...r };
  if (refresh) {
    const sm = (stats.BatchGetSecretValue?.calls ?? 0) + (stats.GetSecretValue?.calls ?? 0);
    const hours = s.durationMs / 3_600_000;
    row.smCallsPerHour = (sm * k) / hours;
    // At the sidecars' own schedule: calls per refresh as measured, refreshes as often as their
    // waits (jittered, mean about 0.9 of the interval) say, not as the machine's clock stretched them.
    row.callsPerRefresh = sm / r.cycles;
    row.refreshesPerHour = 3_600_000 / (r.meanWaitMs * t);
    row.scheduledPerHour = row.callsPerRefresh * s.pods * row.refreshesPerHour;
    row.cheapestPerHour = refreshCallsPerMonth(s.pods, s.secrets, s.intervalMs / 1000) / HOURS_PER_MONTH;
    row.dollarsPerMonth = row.scheduledPerHour * HOURS_PER_MONTH * DOLLARS_PER_CALL;
    row.cheapestDollars = row.cheapestPerHour * HOURS_PER_MONTH * DOLLARS_PER_CALL;
  }
  return row;
}

const rows = [];
for (const s of SCENARIOS) {
  process.stderr.write(`${s.id}: ${s.pods.toLocaleString('en-US')} pods × ${s.secrets}…\n`);
  const row = await run(s);
  // The floor: the same pods with no quota, in the same run, for what the machine itself takes.
  if (s.kind === 'start') row.floorReady = (await run(s, true)).ready;
  rows.push(row);
}

// --- report ---
const misses = [];
console.log(`\nFleet (Node.js ${process.version}, ${cpus} CPUs; start scenarios at 1/${scale} of the pods and quotas, refresh at 1/${refreshScale} of the pods with time ${timeScale}× faster)\n`);
console.log('| scenario | pods (simulated) | ready p50 / p99 / max | p99 with no quota (floor) | failed pods | calls by API (throttled) | CPU: pods, AWS |');
console.log('| --- | --- | --- | --- | --- | --- | --- |');
for (const r of rows.filter((x) => x.kind === 'start')) {
  const p99 = pct(r.ready, 99);
  const apis = Object.entries(r.stats)
    .map(([api, x]) => `${api} ${int(x.calls * r.k)}${x.throttled > 0 ? ` (${int(x.throttled * r.k)})` : ''}`)
    .join(', ');
  const name = `${r.service === 'ssm' ? 'SSM parameters' : 'Secrets Manager'} × ${r.secrets}`;
  console.log(`| ${name} | ${int(r.pods)} (${int(r.simulatedPods)}) | ${sec(pct(r.ready, 50))} / ${sec(p99)} / ${sec(r.ready.at(-1))} | ${sec(pct(r.floorReady, 99))} | ${r.failedPods} | ${apis} | ${Math.round((r.cpuMs / r.wallMs) * 100)}%, ${Math.round(r.standinCpu * 100)}% |`);
  if (r.failedPods > 0) misses.push(`${name}: ${r.failedPods} failed pod(s): ${r.reports[0]}`);
  const target = TARGETS.startP99Ms[r.secrets];
  if (r.service === 'secretsmanager' && target !== undefined && !(p99 <= target)) misses.push(`${name}: p99 ${sec(p99)} over the target of ${sec(target)}`);
}
for (const r of rows.filter((x) => x.kind === 'refresh')) {
  console.log(`\n| refresh: ${int(r.pods)} pods × ${r.secrets} secrets every ${r.intervalMs / 60_000} min, ${r.durationMs / 3_600_000} h (simulated: ${int(r.simulatedPods)} pods every ${r.intervalMs / r.t / 1000} s for ${r.durationMs / r.t / 1000} s) | |`);
  console.log('| --- | --- |');
  const apis = Object.entries(r.stats).map(([api, x]) => `${api} ${int((x.calls * r.k) / (r.durationMs / 3_600_000))}${x.throttled > 0 ? ` (${int((x.throttled * r.k) / (r.durationMs / 3_600_000))} throttled)` : ''}`);
  console.log(`| calls per hour, by API | ${apis.join(', ')} |`);
  console.log(`| Secrets Manager calls per refresh of a pod (the fewest: ${Math.ceil(r.secrets / 20)}) | ${r.callsPerRefresh.toFixed(3)} |`);
  console.log(`| refreshes per pod and hour, at the sidecar's own waits (the interval: ${3_600_000 / r.intervalMs}) | ${r.refreshesPerHour.toFixed(2)} |`);
  console.log(`| Secrets Manager calls per hour / the cheapest possible | ${int(r.scheduledPerHour)} / ${int(r.cheapestPerHour)} = **${(r.scheduledPerHour / r.cheapestPerHour).toFixed(2)}×** (in the simulated hour as the machine ran it: ${int(r.smCallsPerHour)}) |`);
  console.log(`| dollars per month (calls only) / the cheapest | $${int(r.dollarsPerMonth)} / $${int(r.cheapestDollars)} |`);
  console.log(`| failed refreshes, failed pods | ${int(r.failedCycles * r.k)}, ${r.failedPods} |`);
  if (r.failedPods > 0) misses.push(`refresh: ${r.failedPods} failed pod(s): ${r.reports[0]}`);
  if (!(r.scheduledPerHour <= TARGETS.refreshOverCheapest * r.cheapestPerHour)) {
    misses.push(`refresh: ${(r.scheduledPerHour / r.cheapestPerHour).toFixed(2)}× the cheapest number of calls, over ${TARGETS.refreshOverCheapest}×`);
  }
}
if (misses.length > 0) {
  console.log(`\nMISSED:\n${misses.map((m) => `  ${m}`).join('\n')}`);
  process.exit(1);
}
console.log('\nall targets met');
