#!/usr/bin/env node
// No review starves its neighbours: the built webhook (`<bundle>/cli.mjs webhook`) runs in a cgroup
// v1 memory group at the chart's memory limit (charts/aws-secret-injector/values.yaml), pinned to
// one core, while from another core 16 keep-alive clients send the seed review every 50 ms, a new
// TLS connection sends one every 100 ms (the apiserver after an idle timeout), and in each of 5
// rounds 8 of the largest reviews a pod author can send (a `secrets` list filling the apiserver's
// 256 KiB of annotations) arrive at once, each on a connection of its own. It reports the slowest
// other review (keep-alive and new connection), failures, the largest reviews' times, and memory
// as Kubernetes counts it: the group's working set (usage − total_inactive_file, sampled every
// 20 ms), its max_usage_in_bytes and OOM kills, beside the process's peak RSS, and how long this
// client's own event loop stalled (on a loaded machine a slow review can be the client's delay).
// Exits 1 when a target below is missed.
//
//   npm run build && npm run bench:webhook-burst        (BUNDLE_OUT=<dir> to use another build)
//   BENCH_ROUNDS=5 BENCH_LARGE=8 BENCH_KEEPALIVE_EVERY_MS=50 BENCH_SERVER_CPU=0 BENCH_CLIENT_CPU=1 npm run bench:webhook-burst
//
// Needs root, cgroup v1's memory controller at /sys/fs/cgroup/memory, and taskset.

import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { freePort } from './free-port.mjs';
import { chartMemoryLimit, memoryCgroup, memoryCgroupUnavailable } from './memory-cgroup.mjs';
import { LARGEST, review, SEED } from './reviews.mjs';

const TARGETS = {
  otherMaxMs: 1_000, // every other review, new connections included
  largestMaxMs: 5_000, // the chart's webhook.timeoutSeconds: past it the apiserver refuses the pod
  memoryOfLimit: 0.75, // working set and max_usage, as a fraction of the chart's limit
};

const root = resolve(import.meta.dirname, '..');
const cli = join(resolve(root, process.env.BUNDLE_OUT ?? 'dist'), 'cli.mjs');
const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
const large = Number(process.env.BENCH_LARGE ?? 8);
const keepAliveClients = 16;
// Each keep-alive client sends a review at most this often: 320 reviews/s in all, a busy cluster's
// pace, which leaves the large reviews CPU to finish (back to back, the clients alone would fill the core).
const keepAliveEveryMs = Number(process.env.BENCH_KEEPALIVE_EVERY_MS ?? 50);
const serverCpu = process.env.BENCH_SERVER_CPU ?? '0';
const clientCpu = process.env.BENCH_CLIENT_CPU ?? '1';
const round1 = (x) => Math.round(x * 10) / 10;
const loadAverage = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

function post(port, body, agent, timeoutMs = 10_000) {
  return new Promise((res) => {
    const started = performance.now();
    const req = request(
      { host: '127.0.0.1', port, method: 'POST', path: '/mutate', agent, rejectUnauthorized: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }, timeout: timeoutMs },
      (r) => {
        r.resume();
        r.on('end', () => res({ ok: r.statusCode === 200, ms: performance.now() - started, status: r.statusCode }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => res({ ok: false, ms: performance.now() - started, status: e.message }));
    req.end(body);
  });
}

async function main() {
  const unavailable = memoryCgroupUnavailable();
  if (unavailable !== undefined) throw new Error(`needs a cgroup v1 memory group: ${unavailable}`);
  execFileSync('taskset', ['-cp', clientCpu, String(process.pid)], { stdio: 'ignore' });
  const limit = chartMemoryLimit(root);
  const group = memoryCgroup(`aws-secret-injector-bench-${process.pid}`, { limitBytes: limit.bytes });
  const dir = mkdtempSync(join(tmpdir(), 'bench-burst-'));
  const loadAtStart = loadAverage();
  let child;
  try {
    execFileSync(process.execPath, [cli, 'certs', 'generate', '--out', dir], { stdio: 'ignore' });
    const port = await freePort();
    const [cmd, ...args] = group.joinArgs(['taskset', '-c', serverCpu, process.execPath, cli, 'webhook']);
    child = spawn(cmd, args, {
      env: { ...process.env, HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn', TLS_CERT_FILE: join(dir, 'tls.crt'), TLS_KEY_FILE: join(dir, 'tls.key') },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const seed = review('seed', SEED);
    for (let ready = Date.now() + 30_000; ; ) {
      if (child.exitCode !== null) throw new Error(`the webhook exited with ${child.exitCode}`);
      if (Date.now() > ready) throw new Error('the webhook did not start within 30 s');
      if ((await post(port, seed, false, 2_000)).ok) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    // Warm-up: the JIT and the review workers see both kinds once.
    await post(port, LARGEST, false, 30_000);
    for (let i = 0; i < 200; i++) await post(port, seed, false);

    const stopSampling = group.sample(20);
    // This process's own event loop: on a loaded machine the client can stall too, and a review
    // then looks slow for a delay that is not the webhook's.
    const clientDelay = monitorEventLoopDelay({ resolution: 10 });
    clientDelay.enable();
    let running = true;
    const keepAlive = [];
    const fresh = [];
    const loops = Array.from({ length: keepAliveClients }, async () => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      while (running) {
        const next = new Promise((r) => setTimeout(r, keepAliveEveryMs));
        keepAlive.push(await post(port, seed, agent));
        await next;
      }
      agent.destroy();
    });
    const newConnections = (async () => {
      const sent = [];
      while (running) {
        sent.push(post(port, seed, false).then((r) => fresh.push(r)));
        await new Promise((r) => setTimeout(r, 100));
      }
      await Promise.all(sent);
    })();
    const largest = [];
    await new Promise((r) => setTimeout(r, 500));
    for (let i = 0; i < rounds; i++) {
      largest.push(...(await Promise.all(Array.from({ length: large }, () => post(port, LARGEST, false, 30_000)))));
      await new Promise((r) => setTimeout(r, 500));
    }
    running = false;
    await Promise.all([...loops, newConnections]);
    await new Promise((r) => setTimeout(r, 200));
    const peakWsMiB = stopSampling();
    clientDelay.disable();

    const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
    const peakRssMiB = Number(/^VmHWM:\s+(\d+)/m.exec(status)?.[1] ?? NaN) / 1024;
    const maxUsageMiB = group.peakMiB();
    const oomKills = group.oomKills();
    const stats = (xs) => {
      const ms = xs.map((x) => x.ms).sort((a, b) => a - b);
      return { reviews: xs.length, failed: xs.filter((x) => !x.ok).length, p50Ms: Math.round(ms[Math.floor(ms.length / 2)] ?? NaN), maxMs: Math.round(ms.at(-1) ?? NaN) };
    };
    const result = {
      setup: { node: process.version, rounds, large, keepAliveClients, keepAliveEveryMs, serverCpu, clientCpu, memoryLimit: limit.text, loadAverage: { start: loadAtStart, end: loadAverage() } },
      clientStallMaxMs: Math.round(clientDelay.max / 1e6),
      keepAlive: stats(keepAlive),
      newConnection: stats(fresh),
      largest: { ...stats(largest), statuses: [...new Set(largest.map((x) => x.status))] },
      memory: {
        workingSetPeakMiB: round1(peakWsMiB),
        maxUsageMiB: round1(maxUsageMiB),
        peakRssMiB: round1(peakRssMiB),
        limitMiB: round1(limit.bytes / 2 ** 20),
        workingSetOfLimit: Math.round(((peakWsMiB * 2 ** 20) / limit.bytes) * 100) / 100,
        maxUsageOfLimit: Math.round(((maxUsageMiB * 2 ** 20) / limit.bytes) * 100) / 100,
        oomKills,
      },
    };
    console.log(JSON.stringify(result, null, 2));
    const missed = [];
    for (const [name, s] of [['keep-alive', result.keepAlive], ['new-connection', result.newConnection]]) {
      if (s.failed > 0) missed.push(`${s.failed} ${name} reviews failed`);
      if (!(s.maxMs <= TARGETS.otherMaxMs)) missed.push(`a ${name} review took ${s.maxMs} ms > ${TARGETS.otherMaxMs} ms`);
    }
    if (result.largest.failed > 0) missed.push(`${result.largest.failed} of the largest reviews failed (${result.largest.statuses.join(', ')})`);
    if (!(result.largest.maxMs <= TARGETS.largestMaxMs)) missed.push(`a largest review took ${result.largest.maxMs} ms > ${TARGETS.largestMaxMs} ms`);
    if (!(result.memory.workingSetOfLimit <= TARGETS.memoryOfLimit)) missed.push(`working set ${result.memory.workingSetPeakMiB} MiB > ${TARGETS.memoryOfLimit} of ${limit.text}`);
    if (!(result.memory.maxUsageOfLimit <= TARGETS.memoryOfLimit)) missed.push(`max_usage ${result.memory.maxUsageMiB} MiB > ${TARGETS.memoryOfLimit} of ${limit.text}`);
    if (oomKills > 0 || child.exitCode !== null) missed.push(`the webhook was OOM-killed or exited (${oomKills} OOM kills)`);
    console.log(`this client's own event loop stalled at most ${result.clientStallMaxMs} ms (a review's time includes such a stall); load average ${result.setup.loadAverage.start} at the start, ${result.setup.loadAverage.end} at the end`);
    console.log(missed.length === 0 ? `all targets met: ${JSON.stringify(TARGETS)}` : `targets missed: ${missed.join('; ')}`);
    return missed.length === 0 ? 0 : 1;
  } finally {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
    group.remove();
  }
}

process.exitCode = await main();
