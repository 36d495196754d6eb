#!/usr/bin/env node
// What the fetcher costs a pod, against what Node.js itself costs in the same run: CPU time, wall
// time (unthrottled, and under CPU limits), its memory cgroup's peak and largest working set, and
// peak resident memory of
//   the floor       `node -e 0`
//   ours            `fetcher fetch`, the executable the image runs, 1 and 20 secrets; and 1 secret
//                   with the executable out of the page cache (see below), alone and under the
//                   chart's memory limit of the fetcher
//   on Node.js      `node start.cjs fetch` (the same bundle with its V8 code cache), 1 secret, for
//                   comparison
// Medians of BENCH_RUNS runs (default 8), the cases interleaved so that a busy moment hits them
// all alike. Exits 1 when a target below is missed.
//
// As in a pod: the fetcher gets IRSA's variables (STS AssumeRoleWithWebIdentity, then
// GetSecretValue, or BatchGetSecretValue for 20) and no endpoint URL. It reaches moto through the
// TLS front of bench/aws-front.mjs under the real host names (sts.eu-west-1.amazonaws.com,
// secretsmanager.eu-west-1.amazonaws.com), in a private network namespace the script re-runs in.
// Page cache: the executable (runtime and bundle in one file) is read by the kernel on first use,
// and that page cache is charged to the memory cgroup of the process that first reads it. On a
// node, the image's files were just written by the image's unpacking (the container runtime's
// group) and every pod shares them, as this machine's node binary is shared, so `ours` runs with
// the executable already read by a process outside its group; `page cache cold` drops it first
// (posix_fadvise DONTNEED, through dd): its peak counts the file's page cache, reclaimable,
// inactive file that a memory limit reclaims rather than kills for (its working set shows it), at
// the cost of reading it again: the run under the chart's limit shows that cost.
// A CPU limit is a cgroup v1 `cpu` child group with cfs_quota_us per cfs_period_us=100000, as the
// kubelet sets it (200m: 20000; BENCH_LIMITS=200,1000 in millicores, the default, runs both); CPU
// time is read from a `cpuacct` group (all threads, kernel time included), memory from a `memory`
// group (bench/memory-cgroup.mjs), emptied before each run. The secrets volume is a tmpfs, as a
// pod's memory-backed emptyDir is. Where a part is unavailable (not root, no unshare, no cgroup
// v1), the script says what it used instead. The fetcher runs on the last CPU (taskset), moto and
// the front on the others.
//
//   npm run build && npm run bench:fetcher            (BUNDLE_OUT=<dir> to use another build)
//   BENCH_RUNS=16 BENCH_LIMITS=200,500,1000 npm run bench:fetcher
//   BENCH_PROFILE=25 npm run bench:fetcher             also where a 1-secret run spends its time:
//        a --cpu-prof of it, self time by package (through fetcher.cjs.map), the 25 largest

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { SourceMap } from 'node:module';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { parse as parseYaml } from 'yaml';
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { enterNamespace, has, irsaEnv, secretsVolumes, startAwsFront } from './aws-front.mjs';
import { memoryCgroup, memoryCgroupUnavailable } from './memory-cgroup.mjs';

// Targets: the fetcher should cost a pod little more than Node.js itself does. Memory is what a
// memory limit holds the container to (its cgroup's peak); RSS counts shared pages of the Node.js
// binary and is reported for profiling only.
const TARGETS = {
  cpuOverFloorMs: 45, // 1 secret, IRSA
  memoryPeakMiB: 24, // 1 secret, IRSA
  manyOverOne: 1.2, // 20 secrets against 1, wall time
  scriptKiB: 600,
};
const PERIOD_US = 100_000;
// The chart's memory limit of the fetcher, in MiB.
const CHART_MEMORY_LIMIT_MIB = Number(
  /^(\d+)Mi$/.exec(parseYaml(readFileSync(join(import.meta.dirname, '../charts/aws-secret-injector/values.yaml'), 'utf8')).fetcher.resources.limits.memory)[1],
);
const LIMITS = [...new Set((process.env.BENCH_LIMITS ?? '200,1000').split(',').map(Number).filter((m) => m > 0))];
const REGION = 'eu-west-1';
const ACCOUNT = '123456789012';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const root = resolve(import.meta.dirname, '..');
const out = resolve(root, process.env.BUNDLE_OUT ?? 'dist');
const script = join(out, 'fetcher.cjs');
const entry = join(out, 'start.cjs');
const codeCache = join(out, 'fetcher.cache');
const compiled = join(out, 'fetcher');
const motoServer = resolve(root, '.cache/bin/moto_server');
const runs = Math.max(1, Math.min(Number(process.env.BENCH_RUNS ?? 8), 100));
const notes = [];

for (const [file, what] of [
  [compiled, 'run npm run build first'],
  [script, 'run npm run build first'],
  [entry, 'run npm run build first'],
  [codeCache, 'run npm run build first'],
  [motoServer, 'run `npm run test:all` (or `bash test/setup/install.sh`)'],
]) {
  if (!existsSync(file)) {
    console.error(`${file} is missing: ${what}`);
    process.exit(2);
  }
}

// --- a private mount and network namespace, where the real host names can point at 127.0.0.1 ---
const isRoot = process.getuid?.() === 0;
const { inNamespace, note: namespaceNote } = enterNamespace();

const work = mkdtempSync(join(tmpdir(), 'bench-fetcher-'));
const cleanups = [() => rmSync(work, { recursive: true, force: true })];
const cleanUp = () => {
  for (const f of cleanups.splice(0).reverse()) {
    try {
      f();
    } catch {}
  }
};
process.on('exit', cleanUp);
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => process.exit(130));

// --- CPUs: the fetcher on the last one, everything else here on the others ---
const cpus = availableParallelism();
const pin = cpus >= 2 && has('taskset') && process.env.BENCH_TASKSET !== '0';
const fetcherCpu = String(cpus - 1);
const serverCpus = `0-${cpus - 2}`;
if (pin) spawnSync('taskset', ['-a', '-p', '-c', serverCpus, String(process.pid)], { stdio: 'ignore' });

// --- moto, and the TLS front before it ---
const aws = await startAwsFront({ work, region: REGION, inNamespace, motoServer, cpus: pin ? serverCpus : undefined });
cleanups.push(() => aws.close());
if (namespaceNote) notes.push(`${namespaceNote}: the fetcher reaches the TLS front through ${aws.env.AWS_ENDPOINT_URL}`);
const motoUrl = aws.motoUrl;

// --- the secrets, and the pod's identity ---
const sm = new SecretsManagerClient({ region: REGION, endpoint: motoUrl, credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
const names = Array.from({ length: 20 }, (_, i) => `bench/secret-${i}`);
await Promise.all(names.map((n, i) => sm.send(new CreateSecretCommand({ Name: n, SecretString: JSON.stringify({ user: 'u', password: `p-${i}` }) }))));
sm.destroy();
const podEnv = irsaEnv({ work, region: REGION, front: aws, account: ACCOUNT });

// --- cgroups: one group for the 200m limit, one without; cpuacct for CPU time ---
function cgroupV1(controller) {
  const base = `/sys/fs/cgroup/${controller}`;
  try {
    return statSync(base).isDirectory() && existsSync(join(base, 'cgroup.procs')) ? base : undefined;
  } catch {
    return undefined;
  }
}
const cpuRoot = cgroupV1('cpu');
const acctRoot = cgroupV1('cpuacct') ?? (cpuRoot && existsSync(join(cpuRoot, 'cpuacct.usage')) ? cpuRoot : undefined);
function makeGroup(base, name, settings) {
  const dir = join(base, name);
  mkdirSync(dir);
  cleanups.push(() => rmdirSync(dir));
  for (const [k, v] of Object.entries(settings)) writeFileSync(join(dir, k), String(v));
  return dir;
}
/** Per mode ('free', or a limit in millicores): the cpu group to join and the cpuacct group to read. */
const groups = new Map();
if (isRoot && cpuRoot && existsSync(join(cpuRoot, 'cpu.cfs_quota_us'))) {
  try {
    const tag = `bench-fetcher-${process.pid}`;
    for (const mode of ['free', ...LIMITS]) {
      const settings = mode === 'free' ? {} : { 'cpu.cfs_period_us': PERIOD_US, 'cpu.cfs_quota_us': (PERIOD_US * mode) / 1000 };
      const cpu = makeGroup(cpuRoot, `${tag}-${mode}`, settings);
      const acct = acctRoot === cpuRoot ? cpu : acctRoot ? makeGroup(acctRoot, `${tag}-${mode}`, {}) : undefined;
      groups.set(mode, { cpu, acct });
    }
  } catch (e) {
    notes.push(`could not make cgroup v1 groups (${e.code ?? e.message})`);
    groups.clear();
  }
} else notes.push('no writable cgroup v1 cpu controller (needs root and cgroup v1): no runs under a CPU limit');
if (groups.get('free')?.acct === undefined) notes.push('no cgroup v1 cpuacct group: CPU time from /usr/bin/time, to 10 ms');
// What a memory limit is held against: the container's memory cgroup, page cache of the files it
// reads included. Emptied before each run, as a container starting on a node that has not read
// the image's files yet.
let memory;
const noMemoryCgroup = memoryCgroupUnavailable();
if (noMemoryCgroup === undefined) {
  try {
    memory = memoryCgroup(`bench-fetcher-${process.pid}-memory`);
    cleanups.push(() => memory.remove());
  } catch (e) {
    notes.push(`could not make a cgroup v1 memory group (${e.code ?? e.message})`);
  }
} else notes.push(`${noMemoryCgroup}: no memory cgroup, so no peak or working set`);
// The secrets volume: a tmpfs, as a pod's memory-backed emptyDir.
const secretsTmpfs = secretsVolumes(work, inNamespace);
cleanups.push(secretsTmpfs.unmount);
if (secretsTmpfs.note) notes.push(secretsTmpfs.note);
const volumes = secretsTmpfs.dir;
const time = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;
if (!time) notes.push('no /usr/bin/time: peak RSS not measured');

/** Self time of one 1-secret run on Node.js, by where the code comes from: a package, a fetcher file, Node.js. */
async function profile(top) {
  const dir = join(work, 'profile');
  const r = fetchCase(1, { onNode: true })();
  await once([process.execPath, '--cpu-prof', '--cpu-prof-dir', dir, '--cpu-prof-interval', '100', ...r.argv.slice(1)], { mode: 'free', env: r.env });
  const p = JSON.parse(readFileSync(join(dir, readdirSync(dir)[0]), 'utf8'));
  const map = new SourceMap(JSON.parse(readFileSync(`${script}.map`, 'utf8')));
  const where = new Map();
  const placeOf = (cf) => {
    if (cf.url.endsWith('fetcher.cjs') || cf.url === '') {
      if (cf.url === '') return cf.functionName; // (program), (garbage collector), (idle)
      const e = map.findEntry(cf.lineNumber, cf.columnNumber);
      const src = e?.originalSource ?? '';
      const pkg = /node_modules\/((@[^/]+\/)?[^/]+)/.exec(src)?.[1];
      return pkg ?? (/fetcher\/[^/]+$/.exec(src)?.[0] ?? 'fetcher.cjs');
    }
    return cf.url.startsWith('node:') ? `Node.js ${cf.url.replace(/^node:(internal\/)?/, '').split('/')[0]}` : cf.url;
  };
  const self = new Map(p.nodes.map((n) => [n.id, 0]));
  p.samples.forEach((id, i) => self.set(id, self.get(id) + (p.timeDeltas[i] ?? 0)));
  for (const n of p.nodes) {
    const k = placeOf(n.callFrame);
    where.set(k, (where.get(k) ?? 0) + self.get(n.id));
  }
  where.delete('(idle)');
  const total = [...where.values()].reduce((a, b) => a + b, 0);
  console.log(`\nwhere a 1-secret run on Node.js spends its time (--cpu-prof of the main thread, after start-up; ${f1(total / 1000)} ms sampled, idle left out):`);
  // Samples are wall-clock ticks of a process that may be waiting for a CPU: the shares say more than the milliseconds.
  for (const [k, us] of [...where].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`  ${f0((100 * us) / total).padStart(3)}%  ${f1(us / 1000).padStart(6)} ms  ${k}`);
  }
}

/** One run of the command `argv` in the pod's environment: wall ms, CPU ms, peak RSS MiB. */
async function once(argv, { mode, env = {}, warm, cold, limitMiB }) {
  const { cpu, acct } = groups.get(mode) ?? {};
  if (acct) writeFileSync(join(acct, 'cpuacct.usage'), '0');
  memory?.reset();
  // A memory limit, as the pod's container has one: a cold page cache is then reclaimed as it is read.
  if (memory && limitMiB) writeFileSync(join(memory.dir, 'memory.limit_in_bytes'), String(limitMiB * 2 ** 20));
  const throttled = () => (mode === 'free' || !cpu ? NaN : Number(/throttled_time (\d+)/.exec(readFileSync(join(cpu, 'cpu.stat'), 'utf8'))?.[1] ?? NaN));
  const throttledBefore = throttled();
  const join_ = [cpu, acct, memory?.dir].filter((d, i, all) => d && all.indexOf(d) === i).map((d) => `echo $$ > ${d}/cgroup.procs`);
  // A file already in the page cache, read by a process outside the group (as a node that ran it before).
  if (warm) readFileSync(warm);
  // A file no process has read since the node pulled the image: out of the page cache.
  for (const f of cold ?? []) spawnSync('dd', [`if=${f}`, 'iflag=nocache', 'count=0', 'status=none']);
  const inner = [...(pin ? ['taskset', '-c', fetcherCpu] : []), ...argv];
  const timeOut = join(work, 'time');
  const cmd = [...(time ? [time, '-f', '%e %U %S %M', '-o', timeOut] : []), 'sh', '-c', `${[...join_, 'exec "$@"'].join(' && ')}`, 'sh', ...inner];
  const t0 = performance.now();
  const child = spawn(cmd[0], cmd.slice(1), { cwd: work, env: { ...podEnv, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  const largestWorkingSet = memory?.sample(2);
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise((r) => child.on('close', r));
  const wall = performance.now() - t0;
  const workingSet = largestWorkingSet?.() ?? NaN;
  if (memory && limitMiB) writeFileSync(join(memory.dir, 'memory.limit_in_bytes'), '-1');
  if (code !== 0) throw new Error(`${argv.join(' ')} exited ${code}: ${stderr}`);
  const [, u, s, maxKiB] = time ? readFileSync(timeOut, 'utf8').trim().split(/\s+/).map(Number) : [];
  const cpuMs = acct ? Number(readFileSync(join(acct, 'cpuacct.usage'), 'utf8')) / 1e6 : time ? (u + s) * 1000 : NaN;
  const peak = memory ? memory.peakMiB() : NaN;
  return { wall, cpu: cpuMs, rss: time ? maxKiB / 1024 : NaN, peak, workingSet, throttled: (throttled() - throttledBefore) / 1e6 };
}

function fetchCase(count, { onNode = false, cold = false, limitMiB } = {}) {
  return () => {
    const dir = mkdtempSync(join(volumes, 'volume-'));
    const spec = { version: 1, dir: '/tmp', mode: '0444', region: REGION, items: names.slice(0, count).map((n, i) => ({ ref: n, file: `s${i}` })) };
    const argv = [...(onNode ? [process.execPath, entry] : [compiled]), 'fetch', '--dir', dir];
    const env = { SECRET_INJECTOR_SPEC: JSON.stringify(spec), SECRET_INJECTOR_TERMINATION_LOG: join(dir, '..', `termination-${count}`) };
    return { argv, env, warm: onNode || cold ? undefined : compiled, cold: cold ? [compiled] : undefined, limitMiB, check: () => existsSync(join(dir, '.secrets-ready')) && readFileSync(join(dir, 's0'), 'utf8').includes('p-0'), dir };
  };
}
const cases = [
  { name: 'node -e 0 (the floor)', make: () => ({ argv: [process.execPath, '-e', '0'], env: {}, check: () => true }) },
  { name: 'ours, 1 secret', make: fetchCase(1) },
  { name: 'ours, 20 secrets', make: fetchCase(20) },
  { name: 'ours, 1 secret, page cache cold', make: fetchCase(1, { cold: true }) },
  { name: `ours, 1 secret, page cache cold, memory limit ${CHART_MEMORY_LIMIT_MIB}Mi`, make: fetchCase(1, { cold: true, limitMiB: CHART_MEMORY_LIMIT_MIB }) },
  { name: 'on Node.js (start.cjs), 1 secret', make: fetchCase(1, { onNode: true }) },
];
const modes = ['free', ...LIMITS.filter((m) => groups.has(m))];

// One unmeasured pass (page cache, moto's own first calls), then the measured ones, interleaved.
const samples = new Map(cases.map((c) => [c.name, Object.fromEntries(modes.map((m) => [m, []]))]));
for (let i = -1; i < runs; i++) {
  for (const c of cases) {
    for (const mode of modes) {
      const r = c.make();
      const m = await once(r.argv, { mode, env: r.env, warm: r.warm, cold: r.cold, limitMiB: r.limitMiB });
      if (!r.check()) throw new Error(`${c.name}: the secrets were not written`);
      if (r.dir) rmSync(r.dir, { recursive: true, force: true });
      if (i >= 0) samples.get(c.name)[mode].push(m);
    }
  }
}

const median = (xs) => {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const stats = new Map();
for (const [name, s] of samples) {
  stats.set(name, {
    cpu: median(s.free.map((x) => x.cpu)),
    wall: median(s.free.map((x) => x.wall)),
    limited: Object.fromEntries(modes.filter((m) => m !== 'free').map((m) => [m, median(s[m].map((x) => x.wall))])),
    throttled: Object.fromEntries(modes.filter((m) => m !== 'free').map((m) => [m, median(s[m].map((x) => x.throttled))])),
    rss: median(s.free.map((x) => x.rss)),
    peak: median(s.free.map((x) => x.peak)),
    workingSet: median(s.free.map((x) => x.workingSet)),
  });
}

const f0 = (n) => (Number.isNaN(n) ? '–' : n.toFixed(0));
const f1 = (n) => (Number.isNaN(n) ? '–' : n.toFixed(1));
const kib = (p) => statSync(p).size / 1024;
console.log(`Node.js ${process.version}, ${cpus} CPUs${pin ? `, the fetcher pinned to CPU ${fetcherCpu}` : ''}; medians of ${runs} runs`);
console.log(
  `AWS: moto behind a TLS front, ${aws.where}; identity: IRSA`,
);
for (const n of notes) console.log(`note: ${n}`);
console.log(
  `fetcher (the executable) ${f1(kib(compiled) / 1024)} MiB; fetcher.cjs, the bundle compiled into it, ${f0(kib(script))} KiB (${f0(gzipSync(readFileSync(script)).length / 1024)} KiB gzipped); fetcher.cache ${f0(kib(codeCache))} KiB`,
);
console.log('');
const limited = modes.filter((m) => m !== 'free');
console.log(`| | CPU | wall | ${limited.map((m) => `wall under ${m}m CPU (throttled) | `).join('')}memory cgroup peak | largest working set | peak RSS |`);
console.log(`| --- | --- | --- | ${limited.map(() => '--- | ').join('')}--- | --- | --- |`);
for (const [name, s] of stats) {
  console.log(`| ${name} | ${f1(s.cpu)} ms | ${f0(s.wall)} ms | ${limited.map((m) => `${f0(s.limited[m])} ms (${f0(s.throttled[m])} ms) | `).join('')}${f1(s.peak)} MiB | ${f1(s.workingSet)} MiB | ${f1(s.rss)} MiB |`);
}
if (limited.length > 0) console.log('(throttled: the time the CPU limit held the process back, cpu.stat throttled_time of its group)');
console.log('(memory cgroup peak: max_usage_in_bytes; working set: usage − total_inactive_file, polled every 2 ms, so a short peak may fall between polls; RSS counts shared pages of the Node.js binary)');

const floor = stats.get(cases[0].name);
const one = stats.get(cases[1].name);
const many = stats.get(cases[2].name);
console.log('');
console.log(
  `ours, 1 secret, against the floor: CPU +${f1(one.cpu - floor.cpu)} ms (${(one.cpu / floor.cpu).toFixed(2)}x), wall +${f0(one.wall - floor.wall)} ms (${(one.wall / floor.wall).toFixed(2)}x), memory cgroup peak +${f1(one.peak - floor.peak)} MiB, peak RSS +${f1(one.rss - floor.rss)} MiB`,
);
const cold = stats.get(cases[3].name);
console.log(`ours, 1 secret, page cache cold: memory cgroup peak ${f1(cold.peak)} MiB (the executable's page cache, charged to the first group that reads it), working set ${f1(cold.workingSet)} MiB, CPU +${f1(cold.cpu - one.cpu)} ms`);
console.log(
  `20 secrets against 1: wall ${(many.wall / one.wall).toFixed(2)}x${limited.map((m) => `, under ${m}m ${(many.limited[m] / one.limited[m]).toFixed(2)}x`).join('')}, CPU ${(many.cpu / one.cpu).toFixed(2)}x`,
);

const missed = [];
const check = (ok, text) => (ok ? undefined : missed.push(text));
check(one.cpu - floor.cpu <= TARGETS.cpuOverFloorMs, `CPU, 1 secret: floor +${f1(one.cpu - floor.cpu)} ms > floor +${TARGETS.cpuOverFloorMs} ms`);
if (memory) check(one.peak <= TARGETS.memoryPeakMiB, `memory cgroup peak, 1 secret: ${f1(one.peak)} MiB > ${TARGETS.memoryPeakMiB} MiB`);
else console.log('no memory cgroup: the memory target is not checked');
check(many.wall <= TARGETS.manyOverOne * one.wall, `20 secrets: ${(many.wall / one.wall).toFixed(2)}x the wall time of 1 > ${TARGETS.manyOverOne}x`);
check(kib(script) <= TARGETS.scriptKiB, `fetcher.cjs ${f0(kib(script))} KiB > ${TARGETS.scriptKiB} KiB`);
if (process.env.BENCH_PROFILE) await profile(Number(process.env.BENCH_PROFILE) || 25);
if (missed.length > 0) console.error(`\ntargets missed:\n  ${missed.join('\n  ')}`);
else console.log('\nall targets met');
process.exit(missed.length > 0 ? 1 : 0);
