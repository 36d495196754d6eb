// The pods of bench/fleet.mjs, bundled by it with esbuild and run as one process: each simulated
// pod is the fetcher's own code, unchanged: `execute` (the init container) or a `Refresher` (the
// sidecar), each with its own AWS API from `awsApiFactory`, as `run` builds it (its own SDK
// clients, retry strategy, timeouts and IRSA token exchange), against the stand-in whose endpoint
// is AWS_ENDPOINT_URL. It prints one JSON line: each pod's time to ready, failures, CPU.
// Configuration comes as JSON in FLEET_SCENARIO (see bench/fleet.mjs).

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatReport, NOTHING_TO_REDACT } from '../fetcher/errors.js';
import type { AwsApi } from '../fetcher/fetch.js';
import { chooseCredentials, type CredentialSource } from '../fetcher/identity.js';
import { awsApiFactory, execute } from '../fetcher/main.js';
import { Refresher, sleep } from '../fetcher/refresh.js';
import { DEFAULT_MODE, SPEC_VERSION, type FetchSpec } from '../fetcher/spec.js';

interface Scenario {
  kind: 'start' | 'refresh';
  service: 'secretsmanager' | 'ssm';
  pods: number;
  secrets: number;
  /** Pods start spread uniformly over this long. */
  rolloutMs: number;
  /** refresh: the interval and how long to run. */
  intervalMs?: number;
  durationMs?: number;
  dir: string;
}

const ACCOUNT = '123456789012';
const REGION = 'eu-west-1';
const scenario = JSON.parse(process.env.FLEET_SCENARIO ?? '{}') as Scenario;

const tokenFile = join(scenario.dir, 'token');
writeFileSync(tokenFile, 'eyJhbGciOiJSUzI1NiJ9.fleet.pod');
const credentials = chooseCredentials({ AWS_ROLE_ARN: `arn:aws:iam::${ACCOUNT}:role/fleet`, AWS_WEB_IDENTITY_TOKEN_FILE: tokenFile });
if ('failure' in credentials) throw new Error(credentials.failure.message);
const source: CredentialSource = credentials.source;

const ref = (j: number) =>
  scenario.service === 'ssm'
    ? `arn:aws:ssm:${REGION}:${ACCOUNT}:parameter/fleet/app-${j}`
    : `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:fleet/app-${j}-AbCdEf`;

function specOf(i: number): FetchSpec {
  const dir = join(scenario.dir, `pod-${i}`);
  mkdirSync(dir, { recursive: true });
  const spec: FetchSpec = {
    version: SPEC_VERSION,
    dir,
    region: REGION,
    mode: DEFAULT_MODE,
    items: Array.from({ length: scenario.secrets }, (_, j) => ({ ref: ref(j), file: `s${j}` })),
  };
  if (scenario.intervalMs !== undefined) spec.refresh = { intervalSeconds: scenario.intervalMs / 1000 };
  return spec;
}

const ready: number[] = [];
const reports: string[] = [];
let failedPods = 0;
const failPod = (report: string) => {
  failedPods++;
  if (reports.length < 3) reports.push(report);
};
const cpu0 = process.cpuUsage();
const wall0 = performance.now();

async function startPod(i: number, scheduledAt: number): Promise<void> {
  const spec = specOf(i);
  const r = await execute(spec, { credentials, api: awsApiFactory(`fleet.pod-${i}`), envRegion: REGION });
  if (r.ok) ready.push(performance.now() - scheduledAt);
  else failPod(formatReport(r.failures, r.context, r.redact));
}

/** What the init container left on the volume, written by the fetcher's own code from memory. */
const seedApi: AwsApi = {
  getSecretValue: async () => {
    throw new Error('seeded by batch');
  },
  batchGetSecretValue: async (_region, input) => ({
    SecretValues: (input.SecretIdList ?? []).map((id) => ({ ARN: id, Name: id.slice(id.indexOf(':secret:') + 8, -7), VersionId: 'v1', SecretString: 'seed' })),
  }),
  getParameters: async (_region, input) => ({
    Parameters: (input.Names ?? []).map((n) => ({ ARN: n, Name: n.slice(n.indexOf(':parameter') + 10), Value: 'seed', Version: 1 })),
  }),
  getParametersByPath: async () => ({ Parameters: [] }),
  callerIdentity: async () => `arn:aws:sts::${ACCOUNT}:assumed-role/fleet/seed`,
};

let failedCycles = 0;
let cycles = 0;
/** Every wait the sidecars asked for (their own schedule, which a busy machine does not stretch). */
let waited = 0;
let waits = 0;

async function refreshPod(i: number, stop: AbortSignal): Promise<void> {
  const spec = specOf(i);
  const seeded = await execute(spec, { credentials, api: () => seedApi, envRegion: REGION });
  if (!seeded.ok) throw new Error(formatReport(seeded.failures, seeded.context, NOTHING_TO_REDACT));
  const refresher = new Refresher(spec, {
    api: awsApiFactory(`fleet.pod-${i}`)(spec, REGION, source),
    envRegion: REGION,
    now: Date.now,
    random: Math.random,
    sleep: async (ms, signal) => {
      waited += ms;
      waits++;
      await sleep(ms, signal);
      if (!signal.aborted) cycles++;
    },
    log: (line) => {
      if (line.startsWith('refresh failed')) {
        failedCycles++;
        if (reports.length < 3) reports.push(line);
      }
    },
  });
  await refresher.resume();
  const code = await refresher.run(stop);
  if (code !== 0) failPod(`pod ${i}: the refresher exited ${code}`);
}

if (scenario.kind === 'start') {
  const runs: Promise<void>[] = [];
  for (let i = 0; i < scenario.pods; i++) {
    const at = Math.random() * scenario.rolloutMs;
    const run = () => startPod(i, wall0 + at).catch((e: unknown) => failPod(String(e)));
    runs.push(new Promise<void>((resolve) => setTimeout(() => void run().then(resolve), at)));
  }
  await Promise.all(runs);
} else {
  const stop = new AbortController();
  const runs: Promise<void>[] = [];
  for (let i = 0; i < scenario.pods; i++) {
    const at = Math.random() * scenario.rolloutMs;
    runs.push(sleep(at, stop.signal).then(() => refreshPod(i, stop.signal)).catch((e: unknown) => failPod(String(e))));
  }
  await sleep(scenario.durationMs ?? 0, new AbortController().signal);
  stop.abort();
  await Promise.all(runs);
}

const cpu = process.cpuUsage(cpu0);
process.stdout.write(
  `${JSON.stringify({
    ready,
    failedPods,
    failedCycles,
    cycles,
    meanWaitMs: waits > 0 ? waited / waits : 0,
    reports,
    wallMs: performance.now() - wall0,
    cpuMs: (cpu.user + cpu.system) / 1000,
    rssMiB: process.memoryUsage().rss / 2 ** 20,
  })}\n`,
);
process.exit(0);
