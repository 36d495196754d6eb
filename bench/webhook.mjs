#!/usr/bin/env node
// Review throughput, latency and memory of the built webhook (`<bundle>/cli.mjs webhook`), run as
// a child process on 127.0.0.1 and driven over HTTPS the way kube-apiserver drives it: a few
// keep-alive connections, reviews back to back. A second phase opens a new TLS connection per
// review. A third sends the largest review a pod can carry. Every loop is bounded in count and in
// time. Exits 1 when a target below is missed.
//
//   npm run build && npm run bench:webhook            (BUNDLE_OUT=<dir> to use another build)
//   BENCH_SECONDS=5 BENCH_CONCURRENCY=4 BENCH_MAX_REQUESTS=50000 BENCH_NEW_CONNECTIONS=300 npm run bench:webhook

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { createServer } from 'node:net';
import { resolve } from 'node:path';

// Targets for the project's reference machine (2 cores, shared by this client and the webhook);
// a review is pure CPU work of about half a millisecond, so these leave room for a busy machine.
const TARGETS = {
  reviewsPerSecond: 500, // keep-alive phase, the three review kinds mixed
  p99Ms: 50, // keep-alive phase
  newConnectionP99Ms: 100, // one TLS handshake + one review
  maxRssMiB: 150, // peak resident memory of the webhook process
  largestMs: 2000, // the worst a pod author can send: a `secrets` list filling the 256 KiB of annotations
  largestPeakRssMiB: 230, // after the largest reviews: below the chart's 256Mi memory limit
};

const root = resolve(import.meta.dirname, '..');
const cli = resolve(root, process.env.BUNDLE_OUT ?? 'dist', 'cli.mjs');
const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 4);
const maxRequests = Number(process.env.BENCH_MAX_REQUESTS ?? 50_000);
const handshakes = Number(process.env.BENCH_NEW_CONNECTIONS ?? 300);

function review(uid, annotations, containers = 1) {
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'bench',
      operation: 'CREATE',
      userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller' },
      object: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { generateName: 'api-7d4b9c-', namespace: 'bench', labels: { app: 'api' }, annotations },
        spec: {
          serviceAccountName: 'api',
          containers: Array.from({ length: containers }, (_, i) => ({
            name: `c${i}`,
            image: 'public.ecr.aws/docker/library/busybox:1.36',
            env: [
              { name: 'AWS_ROLE_ARN', value: 'arn:aws:iam::123456789012:role/api' },
              { name: 'AWS_WEB_IDENTITY_TOKEN_FILE', value: '/var/run/secrets/eks.amazonaws.com/serviceaccount/token' },
            ],
            volumeMounts: [{ name: 'aws-iam-token', mountPath: '/var/run/secrets/eks.amazonaws.com/serviceaccount', readOnly: true }],
          })),
          volumes: [{ name: 'aws-iam-token', projected: { sources: [{ serviceAccountToken: { audience: 'sts.amazonaws.com', path: 'token' } }] } }],
        },
      },
      dryRun: false,
    },
  });
}

const arn = (n) => `arn:aws:secretsmanager:us-east-1:123456789012:secret:app-${n}-AbCdEf`;
const BODIES = [
  review('seed', { 'secrets.k8s.aws/sidecarInjectorWebhook': 'enabled', 'secrets.k8s.aws/secret-arn': arn(0) }),
  review('many', Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`secrets.k8s.aws/secret.s${i}`, arn(i)])), 3),
  review('skip', { 'example.com/other': 'x' }),
];

// As many short entries as fit in the apiserver's 256 KiB of annotations: the most work one review
// can ask of the webhook (a cost that grows faster than the list would hold the event loop for seconds).
const LARGEST_ENTRIES = 19_000;
const LARGEST = review('largest', {
  'secrets.k8s.aws/region': 'us-east-1',
  'secrets.k8s.aws/secrets': Array.from({ length: LARGEST_ENTRIES }, (_, i) => `- ref: s${i}`).join('\n'),
});

const freePort = () =>
  new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });

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
        r.resume();
        r.on('end', () => (r.statusCode === 200 ? res(Number(process.hrtime.bigint() - started) / 1e6) : rej(new Error(`HTTP ${r.statusCode}`))));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', rej);
    req.end(body);
  });
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
const memory = (pid) => {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN) / 1024;
  return { rssMiB: kb('VmRSS'), peakRssMiB: kb('VmHWM') };
};

async function main() {
  const port = await freePort();
  const child = spawn(process.execPath, [cli, 'webhook'], {
    env: { ...process.env, HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'info' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  try {
    const ready = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`the webhook exited with ${child.exitCode}`);
      if (Date.now() > ready) throw new Error('the webhook did not start within 30 s');
      if (await post(port, BODIES[2], false).then(() => true, () => false)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const idle = memory(child.pid);

    // Phase 1: keep-alive connections, as the apiserver keeps them.
    const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
    for (let i = 0; i < 300; i++) await post(port, BODIES[i % 3], agent); // warm-up
    const latencies = [];
    let failures = 0;
    let next = 0;
    const deadline = Date.now() + seconds * 1000;
    const started = process.hrtime.bigint();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (Date.now() < deadline && next < maxRequests) {
          const body = BODIES[next++ % 3];
          try {
            latencies.push(await post(port, body, agent));
          } catch {
            failures++;
          }
        }
      }),
    );
    const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
    agent.destroy();
    latencies.sort((a, b) => a - b);

    // Phase 2: a new TLS connection per review, one at a time.
    const fresh = [];
    const deadline2 = Date.now() + seconds * 1000;
    for (let i = 0; i < handshakes && Date.now() < deadline2; i++) {
      try {
        fresh.push(await post(port, BODIES[i % 3], false));
      } catch {
        failures++;
      }
    }
    fresh.sort((a, b) => a - b);
    const mem = memory(child.pid);

    // Phase 3: the largest review, a few times (its own memory target: the YAML parser's document
    // of a 256 KiB list takes tens of MiB while it lives).
    const largest = [];
    for (let i = 0; i < 3; i++) {
      try {
        largest.push(await post(port, LARGEST, false));
      } catch {
        failures++;
      }
    }
    const memLargest = memory(child.pid);

    const result = {
      keepAlive: {
        concurrency,
        reviews: latencies.length,
        seconds: Number(elapsed.toFixed(2)),
        reviewsPerSecond: Math.round(latencies.length / elapsed),
        p50Ms: Number(pct(latencies, 50).toFixed(2)),
        p90Ms: Number(pct(latencies, 90).toFixed(2)),
        p99Ms: Number(pct(latencies, 99).toFixed(2)),
        maxMs: Number((latencies.at(-1) ?? NaN).toFixed(2)),
      },
      newConnection: {
        reviews: fresh.length,
        p50Ms: Number(pct(fresh, 50).toFixed(2)),
        p99Ms: Number(pct(fresh, 99).toFixed(2)),
      },
      largest: { entries: LARGEST_ENTRIES, bytes: Buffer.byteLength(LARGEST), maxMs: Number(Math.max(...largest).toFixed(1)), peakRssMiB: Math.round(memLargest.peakRssMiB) },
      memory: { idleRssMiB: Math.round(idle.rssMiB), rssMiB: Math.round(mem.rssMiB), peakRssMiB: Math.round(mem.peakRssMiB) },
      failures,
    };
    console.log(JSON.stringify(result, null, 2));

    const missed = [];
    if (failures > 0) missed.push(`${failures} failed reviews`);
    if (result.keepAlive.reviewsPerSecond < TARGETS.reviewsPerSecond) missed.push(`throughput ${result.keepAlive.reviewsPerSecond}/s < ${TARGETS.reviewsPerSecond}/s`);
    if (result.keepAlive.p99Ms > TARGETS.p99Ms) missed.push(`p99 ${result.keepAlive.p99Ms} ms > ${TARGETS.p99Ms} ms`);
    if (result.newConnection.p99Ms > TARGETS.newConnectionP99Ms) missed.push(`new-connection p99 ${result.newConnection.p99Ms} ms > ${TARGETS.newConnectionP99Ms} ms`);
    if (!(result.largest.maxMs <= TARGETS.largestMs)) missed.push(`largest review ${result.largest.maxMs} ms > ${TARGETS.largestMs} ms`);
    if (result.largest.peakRssMiB > TARGETS.largestPeakRssMiB) missed.push(`peak RSS after the largest reviews ${result.largest.peakRssMiB} MiB > ${TARGETS.largestPeakRssMiB} MiB`);
    if (result.memory.peakRssMiB > TARGETS.maxRssMiB) missed.push(`peak RSS ${result.memory.peakRssMiB} MiB > ${TARGETS.maxRssMiB} MiB`);
    console.log(missed.length === 0 ? `all targets met: ${JSON.stringify(TARGETS)}` : `targets missed: ${missed.join('; ')}`);
    return missed.length === 0 ? 0 : 1;
  } finally {
    child.kill('SIGTERM');
  }
}

process.exitCode = await main();
