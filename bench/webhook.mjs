#!/usr/bin/env node
// What a review costs beyond the HTTP server, measured against a floor started in the same run:
// bench/floor.mjs, a bare node:https server that JSON.parses the body and answers a fixed
// AdmissionReview. Both serve the same certificate and key, each pinned to one core (taskset);
// wrk drives them from another core over keep-alive HTTPS connections, as the apiserver does.
// For every body the floor and the built webhook (`<bundle>/cli.mjs webhook`) are run in turn,
// several rounds, alternating which goes first; a ratio is taken within a round (the two runs
// seconds apart) and the median round is reported, so load from other processes cancels out as
// far as it can. Each server's CPU time per review (all its threads) is reported beside it. Then,
// on the webhook alone: a new TLS connection per review, and the largest review a pod can carry.
// As root with cgroup v1, each server runs in a memory group of its own and its memory is reported
// as Kubernetes counts it (working set: usage − total_inactive_file; the group's peak) beside RSS,
// which counts the shared pages of Node.js. Exits 1 when a target below is missed.
//
//   npm run build && npm run bench:webhook              (BUNDLE_OUT=<dir> to use another build)
//   BENCH_SECONDS=4 BENCH_ROUNDS=5 BENCH_CONNECTIONS=32 BENCH_SERVER_CPU=0 BENCH_CLIENT_CPU=1 BENCH_MEMORY_LIMIT=none npm run bench:webhook
//
// Needs wrk and taskset: `bash test/setup/wrk.sh` installs wrk (run here when it is missing).

import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { freePort } from './free-port.mjs';
import { chartMemoryLimit, memoryCgroup, memoryCgroupUnavailable } from './memory-cgroup.mjs';
import { LARGEST, LARGEST_ENTRIES, review, SEED } from './reviews.mjs';

const TARGETS = {
  // Reviews/s as a fraction of the floor's, same body, same round.
  seedRatio: 0.55, // the seed example: two annotations, injected
  allowedRatio: 0.8, // a pod without our annotations
  containers30Ratio: 0.4, // an annotated pod of 30 containers
  seedP99Ms: 5,
  // Memory after the load, over the floor's: the working set of each server's memory cgroup
  // (resident memory without one).
  memoryOverFloorMiB: 24,
  // CPU per review beyond the floor's for an annotated pod of 100 containers, over that for one
  // container, at most this many times the ratio of their patches' sizes: the cost follows what
  // we add (a mount per container), not the pod (a body 30 times the size).
  scalingSlack: 1.5,
  newConnectionP99Ms: 100, // one TLS handshake + one review
  largestMs: 2000, // the worst a pod author can send: a `secrets` list filling the 256 KiB of annotations
  // After the largest reviews: the webhook's memory cgroup peak (max_usage_in_bytes) as a fraction
  // of the chart's memory limit (peak RSS without a group).
  largestMemoryOfLimit: 0.75,
};

const root = resolve(import.meta.dirname, '..');
const bundle = resolve(root, process.env.BUNDLE_OUT ?? 'dist');
const cli = join(bundle, 'cli.mjs');
const seconds = Number(process.env.BENCH_SECONDS ?? 4);
const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 32);
const serverCpu = process.env.BENCH_SERVER_CPU ?? '0';
const clientCpu = process.env.BENCH_CLIENT_CPU ?? '1';
const handshakes = Number(process.env.BENCH_NEW_CONNECTIONS ?? 300);

// `containers` is the number of containers of an annotated pod (every one gets the mount).
const BODIES = [
  { name: 'seed', label: 'the seed pod (two annotations, injected)', body: review('seed', SEED), containers: 1 },
  { name: 'allowed', label: 'a pod without our annotations (allowed)', body: review('skip', { 'example.com/other': 'x' }) },
  { name: 'c10', label: 'an annotated pod of 10 containers', body: review('c10', SEED, 10), containers: 10 },
  { name: 'c30', label: 'an annotated pod of 30 containers', body: review('c30', SEED, 30), containers: 30 },
  { name: 'c100', label: 'an annotated pod of 100 containers', body: review('c100', SEED, 100), containers: 100 },
];

function post(port, body, agent) {
  return new Promise((res, rej) => {
    const started = process.hrtime.bigint();
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/mutate',
        agent,
        rejectUnauthorized: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        timeout: 10_000,
      },
      (r) => {
        const chunks = [];
        r.on('data', (c) => chunks.push(c));
        r.on('end', () =>
          r.statusCode === 200
            ? res({ ms: Number(process.hrtime.bigint() - started) / 1e6, body: Buffer.concat(chunks).toString('utf8') })
            : rej(new Error(`HTTP ${r.statusCode}`)),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', rej);
    req.end(body);
  });
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const memory = (pid) => {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN) / 1024;
  const group = groupOf.get(pid);
  return { rssMiB: kb('VmRSS'), peakRssMiB: kb('VmHWM'), workingSetMiB: group?.workingSetMiB(), maxUsageMiB: group?.peakMiB() };
};
// CPU time of every thread of a process so far, in µs: a review's cost, as far as a busy machine
// lets it be measured apart from the time the process spends waiting for a core.
const cpuUs = (pid) =>
  readdirSync(`/proc/${pid}/task`).reduce((n, t) => {
    try {
      return n + Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]) / 1e3;
    } catch {
      return n; // a thread that ended meanwhile
    }
  }, 0);
const loadAverage = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const mib = (x) => (x === undefined ? undefined : Math.round(x * 10) / 10);
const has = (cmd) => {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

// Each server in a memory cgroup of its own (root and cgroup v1), so its memory is reported as
// Kubernetes counts it: the working set beside RSS, which counts the shared pages of Node.js. The
// group has the chart's memory limit, as the webhook's container has in a cluster (Node.js sizes
// its heap from it); BENCH_MEMORY_LIMIT=none runs without one.
const noMemoryCgroup = memoryCgroupUnavailable();
const chartLimit = chartMemoryLimit(root);
const groupLimit = process.env.BENCH_MEMORY_LIMIT === 'none' ? undefined : chartLimit.bytes;
const groups = [];
const groupOf = new Map();

/** Starts `node args…` on the server core; resolves once `ready(port)` answers. */
async function start(name, args, env, port) {
  const group = noMemoryCgroup === undefined ? memoryCgroup(`aws-secret-injector-bench-${process.pid}-${groups.length}`, { limitBytes: groupLimit }) : undefined;
  if (group !== undefined) groups.push(group);
  const argv = ['taskset', '-c', serverCpu, process.execPath, ...args];
  const [cmd, ...rest] = group === undefined ? argv : group.joinArgs(argv);
  const child = spawn(cmd, rest, {
    env: { ...process.env, ...env },
    stdio: ['ignore', port === undefined ? 'pipe' : 'ignore', 'inherit'],
  });
  if (port === undefined) {
    port = await new Promise((res, rej) => {
      createInterface({ input: child.stdout }).once('line', (l) => res(Number(l)));
      child.once('exit', (code) => rej(new Error(`${name} exited with ${code}`)));
    });
  }
  const ready = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}`);
    if (Date.now() > ready) throw new Error(`${name} did not start within 30 s`);
    if (await post(port, BODIES[1].body, false).then(() => true, () => false)) {
      if (group !== undefined) groupOf.set(child.pid, group);
      return { child, port };
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

function wrk(server, bodyFile, secs) {
  const { port, child } = server;
  const cpu0 = cpuUs(child.pid);
  const out = execFileSync(
    'taskset',
    ['-c', clientCpu, 'wrk', '-t1', `-c${connections}`, `-d${secs}s`, '--timeout', '10s', '-s', join(root, 'bench', 'wrk-post.lua'), `https://127.0.0.1:${port}/mutate`],
    { env: { ...process.env, BENCH_BODY: bodyFile }, encoding: 'utf8' },
  );
  const line = out.split('\n').find((l) => l.startsWith('{'));
  if (!line) throw new Error(`wrk printed no result:\n${out}`);
  const r = JSON.parse(line);
  const cpu = cpuUs(child.pid) - cpu0;
  return { ...r, perSecond: r.requests / (r.durationUs / 1e6), cpuUsPerReview: cpu / r.requests, failures: r.socketErrors + r.statusErrors };
}

async function main() {
  if (!has('taskset')) throw new Error('taskset not found (util-linux)');
  if (!has('wrk')) execFileSync('bash', [join(root, 'test/setup/wrk.sh')], { stdio: 'inherit' });
  const cpus = readFileSync('/proc/cpuinfo', 'utf8').match(/^processor\s*:/gm)?.length ?? 1;
  if (cpus < 2) throw new Error('needs two cores: one for the servers, one for wrk');

  const limit = chartLimit;
  const loadAtStart = loadAverage();
  const dir = mkdtempSync(join(tmpdir(), 'bench-webhook-'));
  const children = [];
  try {
    execFileSync(process.execPath, [cli, 'certs', 'generate', '--out', dir], { stdio: 'ignore' });
    const tls = { TLS_CERT_FILE: join(dir, 'tls.crt'), TLS_KEY_FILE: join(dir, 'tls.key') };
    const floor = await start('the floor server', [join(root, 'bench', 'floor.mjs')], tls);
    children.push(floor.child);
    const webhookPort = await freePort();
    const ours = await start('the webhook', [cli, 'webhook'], { ...tls, HOST: '127.0.0.1', PORT: String(webhookPort), LOG_LEVEL: 'info' }, webhookPort);
    children.push(ours.child);
    const idle = { floor: memory(floor.child.pid), ours: memory(ours.child.pid) };

    // What each body's review adds: the patch, as the webhook answers it.
    for (const b of BODIES) {
      b.file = join(dir, `${b.name}.json`);
      writeFileSync(b.file, b.body);
      const answer = JSON.parse((await post(ours.port, b.body, false)).body);
      const patch = answer.response.patch === undefined ? '' : Buffer.from(answer.response.patch, 'base64').toString('utf8');
      b.patchOps = patch === '' ? 0 : JSON.parse(patch).length;
      b.patchBytes = Buffer.byteLength(patch);
      if ((b.containers !== undefined) !== (b.patchOps > 0)) throw new Error(`${b.name}: unexpected answer ${JSON.stringify(answer.response)}`);
    }

    // Warm-up: every body through both servers, so the JIT has seen them all.
    for (const b of BODIES) for (const s of [floor, ours]) wrk(s, b.file, 1);

    let failures = 0;
    const rows = [];
    for (const b of BODIES) {
      const runs = [];
      for (let r = 0; r < rounds; r++) {
        const order = r % 2 === 0 ? ['floor', 'ours'] : ['ours', 'floor'];
        const run = {};
        for (const who of order) run[who] = wrk(who === 'floor' ? floor : ours, b.file, seconds);
        failures += run.floor.failures + run.ours.failures;
        runs.push({ ...run, ratio: run.ours.perSecond / run.floor.perSecond });
      }
      const mid = runs.find((x) => x.ratio === median(runs.map((y) => y.ratio)));
      rows.push({
        body: b.name,
        bodyKiB: Number((Buffer.byteLength(b.body) / 1024).toFixed(1)),
        patchOps: b.patchOps,
        patchBytes: b.patchBytes,
        floorPerSecond: Math.round(mid.floor.perSecond),
        oursPerSecond: Math.round(mid.ours.perSecond),
        ratio: Number(mid.ratio.toFixed(2)),
        ratios: runs.map((x) => Number(x.ratio.toFixed(2))),
        // Server CPU time per review, and ours beyond the floor's (medians over the rounds).
        floorCpuUs: Number(median(runs.map((x) => x.floor.cpuUsPerReview)).toFixed(1)),
        oursCpuUs: Number(median(runs.map((x) => x.ours.cpuUsPerReview)).toFixed(1)),
        extraCpuUs: Number(median(runs.map((x) => x.ours.cpuUsPerReview - x.floor.cpuUsPerReview)).toFixed(1)),
        floorP99Ms: mid.floor.p99Us / 1000,
        oursP99Ms: mid.ours.p99Us / 1000,
      });
    }
    const loaded = { floor: memory(floor.child.pid), ours: memory(ours.child.pid) };

    // A new TLS connection per review, one at a time (the apiserver after an idle timeout).
    const fresh = [];
    const deadline = Date.now() + seconds * 1000;
    for (let i = 0; i < handshakes && Date.now() < deadline; i++) {
      try {
        fresh.push((await post(ours.port, BODIES[i % 2].body, false)).ms);
      } catch {
        failures++;
      }
    }
    fresh.sort((a, b) => a - b);

    // The largest review, a few times (its own memory target: the YAML parser's document of a
    // 256 KiB list takes tens of MiB while it lives).
    const largest = [];
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    for (let i = 0; i < 3; i++) {
      try {
        largest.push((await post(ours.port, LARGEST, agent)).ms);
      } catch {
        failures++;
      }
    }
    agent.destroy();
    const afterLargest = memory(ours.child.pid);

    const by = Object.fromEntries(rows.map((r) => [r.body, r]));
    const result = {
      setup: { connections, seconds, rounds, serverCpu, clientCpu, node: process.version, loadAverage: { start: loadAtStart, end: loadAverage() } },
      keepAlive: rows,
      memory: {
        floor: { idleRssMiB: Math.round(idle.floor.rssMiB), rssMiB: Math.round(loaded.floor.rssMiB), idleWorkingSetMiB: mib(idle.floor.workingSetMiB), workingSetMiB: mib(loaded.floor.workingSetMiB) },
        ours: {
          idleRssMiB: Math.round(idle.ours.rssMiB),
          rssMiB: Math.round(loaded.ours.rssMiB),
          peakRssMiB: Math.round(loaded.ours.peakRssMiB),
          idleWorkingSetMiB: mib(idle.ours.workingSetMiB),
          workingSetMiB: mib(loaded.ours.workingSetMiB),
        },
      },
      newConnection: { reviews: fresh.length, p50Ms: Number(pct(fresh, 50).toFixed(2)), p99Ms: Number(pct(fresh, 99).toFixed(2)) },
      largest: {
        entries: LARGEST_ENTRIES,
        bytes: Buffer.byteLength(LARGEST),
        maxMs: Number(Math.max(...largest).toFixed(1)),
        peakRssMiB: Math.round(afterLargest.peakRssMiB),
        // The memory cgroup's peak over the whole run, the largest reviews included.
        maxUsageMiB: mib(afterLargest.maxUsageMiB),
        workingSetMiB: mib(afterLargest.workingSetMiB),
        memoryLimit: limit.text,
        groupLimit: noMemoryCgroup !== undefined ? 'no group' : groupLimit === undefined ? 'none' : limit.text,
      },
      ...(noMemoryCgroup === undefined ? {} : { note: `${noMemoryCgroup}: no memory cgroup, so no working set; the memory targets apply to RSS` }),
      failures,
    };
    console.log(JSON.stringify(result, null, 2));
    console.log(
      [
        '',
        '| body | KiB | patch ops | floor reviews/s | ours reviews/s | ours ÷ floor (each round) | p99 floor / ours | CPU µs per review floor / ours (+extra) |',
        '| --- | --- | --- | --- | --- | --- | --- | --- |',
        ...rows.map(
          (r) =>
            `| ${BODIES.find((b) => b.name === r.body).label} | ${r.bodyKiB} | ${r.patchOps} | ${r.floorPerSecond} | ${r.oursPerSecond} | **${r.ratio.toFixed(2)}** (${r.ratios.join(', ')}) | ${r.floorP99Ms} / ${r.oursP99Ms} ms | ${r.floorCpuUs} / ${r.oursCpuUs} (+${r.extraCpuUs}) |`,
        ),
        '',
        `after the load: working set floor ${result.memory.floor.workingSetMiB ?? '—'} MiB, ours ${result.memory.ours.workingSetMiB ?? '—'} MiB; RSS floor ${result.memory.floor.rssMiB} MiB, ours ${result.memory.ours.rssMiB} MiB`,
        `after the largest reviews: working set ${result.largest.workingSetMiB ?? '—'} MiB, memory cgroup peak over the run ${result.largest.maxUsageMiB ?? '—'} MiB (limit ${limit.text}), peak RSS ${result.largest.peakRssMiB} MiB`,
      ].join('\n'),
    );

    const missed = [];
    const scaling = by.c100.extraCpuUs / by.seed.extraCpuUs / (by.c100.patchBytes / by.seed.patchBytes);
    if (failures > 0) missed.push(`${failures} failed reviews`);
    if (by.seed.ratio < TARGETS.seedRatio) missed.push(`seed ${by.seed.ratio}× the floor < ${TARGETS.seedRatio}×`);
    if (by.allowed.ratio < TARGETS.allowedRatio) missed.push(`allowed pod ${by.allowed.ratio}× the floor < ${TARGETS.allowedRatio}×`);
    if (by.c30.ratio < TARGETS.containers30Ratio) missed.push(`30-container pod ${by.c30.ratio}× the floor < ${TARGETS.containers30Ratio}×`);
    if (by.seed.oursP99Ms > TARGETS.seedP99Ms) missed.push(`seed p99 ${by.seed.oursP99Ms} ms > ${TARGETS.seedP99Ms} ms`);
    const [what, oursMiB, floorMiB] =
      noMemoryCgroup === undefined ? ['working set', result.memory.ours.workingSetMiB, result.memory.floor.workingSetMiB] : ['RSS', result.memory.ours.rssMiB, result.memory.floor.rssMiB];
    if (!(oursMiB <= floorMiB + TARGETS.memoryOverFloorMiB)) missed.push(`${what} after the load ${oursMiB} MiB > the floor's ${floorMiB} + ${TARGETS.memoryOverFloorMiB} MiB`);
    if (!(scaling <= TARGETS.scalingSlack)) missed.push(`cost over the floor grows ${scaling.toFixed(2)}× faster than the patch from 1 to 100 containers (> ${TARGETS.scalingSlack})`);
    if (result.newConnection.p99Ms > TARGETS.newConnectionP99Ms) missed.push(`new-connection p99 ${result.newConnection.p99Ms} ms > ${TARGETS.newConnectionP99Ms} ms`);
    if (!(result.largest.maxMs <= TARGETS.largestMs)) missed.push(`largest review ${result.largest.maxMs} ms > ${TARGETS.largestMs} ms`);
    const [peakWhat, peakMiB] = noMemoryCgroup === undefined ? ['memory cgroup peak', result.largest.maxUsageMiB] : ['peak RSS', result.largest.peakRssMiB];
    if (!(peakMiB <= (TARGETS.largestMemoryOfLimit * limit.bytes) / 2 ** 20)) {
      missed.push(`${peakWhat} with the largest reviews ${peakMiB} MiB > ${TARGETS.largestMemoryOfLimit} of ${limit.text}`);
    }
    console.log(
      `CPU per review over the floor's, 1 → 100 containers: ${(by.c100.extraCpuUs / by.seed.extraCpuUs).toFixed(2)}×; the patch ${(by.c100.patchBytes / by.seed.patchBytes).toFixed(2)}×; the body ${(by.c100.bodyKiB / by.seed.bodyKiB).toFixed(1)}×`,
    );
    console.log(`load average ${result.setup.loadAverage.start} at the start, ${result.setup.loadAverage.end} at the end`);
    console.log(missed.length === 0 ? `all targets met: ${JSON.stringify(TARGETS)}` : `targets missed: ${missed.join('; ')}`);
    return missed.length === 0 ? 0 : 1;
  } finally {
    await Promise.all(children.filter((c) => c.exitCode === null).map((c) => new Promise((r) => c.once('exit', r).kill('SIGKILL'))));
    rmSync(dir, { recursive: true, force: true });
    for (const g of groups) g.remove();
  }
}

process.exitCode = await main();
