// The init container's program: read the spec from the environment, fetch every secret, write
// them all or nothing, and on failure exit non-zero with one paragraph per problem in the
// termination message and on stderr. `run` is the only code of the fetcher that touches
// process, the environment or the exit code; `execute` does the work with everything injected.

import { existsSync, writeFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { createAwsApi, sessionName } from './aws.js';
import { AnswerMeter, cgroupMemory, checkVolume, type Memory } from './budget.js';
import { fitTerminationMessage, formatReport, NOTHING_TO_REDACT, quoted, redactor, type Failure, FetchError, type Redactor, type ReportContext } from './errors.js';
import { fetchTargets, fetchWithFailover, plan, untilAborted, type AwsApi, type FetchedValue, type FetchOptions, type FetchResult } from './fetch.js';
import { chooseCredentials, type CredentialChoice, type CredentialSource } from './identity.js';
import { networkFromEnv, type Network } from './network.js';
import { fetchPaths, planPaths } from './paths.js';
import { parseReference } from './reference.js';
import { findConflicts, renderItem, type OutputFile } from './render.js';
import {
  DEFAULT_TERMINATION_LOG,
  POD_NAME_ENV,
  POD_NAMESPACE_ENV,
  SPEC_ENV,
  TERMINATION_LOG_ENV,
  parseSpec,
  type FetchSpec,
  type SecretItem,
  type Timeouts,
} from './spec.js';
import { writeSecrets, type Marker, type MarkerEntry } from './write.js';
import { Refresher, sleep } from './refresh.js';
import { signalContainer } from './signal.js';

/** At most this long is spent asking STS for the identity to put in a failure report. */
export const IDENTITY_LOOKUP_MS = 3_000;

/** Used when the spec sets no timeouts. */
export const DEFAULT_TIMEOUTS: Required<Timeouts> = { callSeconds: 10, deadlineSeconds: 60, maxAttempts: 5 };

export interface ExecuteDeps {
  /**
   * The identity chosen from the environment (identity.ts). Without one, execute fails before
   * building the AWS API, so no AWS call is made.
   */
  credentials: CredentialChoice;
  /** Builds the AWS API for this spec and identity (tests pass a fake, or point the SDK at the emulator). */
  api: (spec: FetchSpec, stsRegion: string, source: CredentialSource) => AwsApi;
  /** AWS_REGION, else AWS_DEFAULT_REGION. */
  envRegion?: string;
  /**
   * The fetcher's memory cgroup (budget.ts) and the meter its AWS answers go through: the files
   * are checked against what is left before anything is written.
   */
  budget?: { memory: Memory | undefined; meter: AnswerMeter };
}

export type ExecuteResult =
  | { ok: true; files: number; secrets: number; /** Secrets whose value came from the failover region. */ failedOver: number }
  | { ok: false; failures: Failure[]; context: ReportContext; /** Redacts what was fetched from the report's quoted text. */ redact: Redactor };

/** Every string a fetched value contains (the whole text and each JSON scalar), for redaction. */
export function valueStrings(values: Iterable<FetchedValue>): string[] {
  const out: string[] = [];
  // Iterative: a secret of deeply nested JSON (valid, and within the 64 KiB limit) would
  // overflow the stack of a recursive walk.
  const walk = (root: unknown) => {
    const stack = [root];
    while (stack.length > 0) {
      const v = stack.pop();
      if (typeof v === 'string') out.push(v);
      // Every number: a PIN or an account number is one (the redactor takes short ones only as words of their own).
      else if (typeof v === 'number') out.push(String(v));
      else if (Array.isArray(v)) for (const x of v) stack.push(x);
      else if (typeof v === 'object' && v !== null) for (const x of Object.values(v)) stack.push(x);
    }
  };
  const all = [...values].flatMap((v) => [v, ...(v.members ?? []).map((m) => m.value)]);
  for (const v of all) {
    if (v.text === undefined) continue;
    out.push(String(v.text));
    try {
      walk(JSON.parse(v.text));
    } catch {
      // not JSON: the whole text is already listed
    }
  }
  return out;
}

/**
 * What the report says itself, which redaction leaves alone: the references, their names (and
 * each segment of them), regions and accounts, the regions in use and the identity.
 */
export function reportedStrings(spec: FetchSpec, envRegion: string | undefined, context: ReportContext): string[] {
  const out = new Set<string>();
  const add = (s: string | undefined) => {
    if (s === undefined || s === '') return;
    out.add(s);
    for (const part of s.split(/[:/]/)) if (part !== '') out.add(part);
  };
  for (const item of spec.items) {
    add(item.ref);
    const r = parseReference(item.ref);
    if ('reference' in r) [r.reference.name, r.reference.region, r.reference.account].forEach(add);
  }
  [spec.region, spec.failoverRegion, envRegion, context.identity].forEach(add);
  return [...out];
}

/** A bug's report: its class and message, the message treated as quoted text (it may quote a value). */
export function unexpectedFailure(e: unknown): Failure {
  const name = typeof (e as Error)?.name === 'string' ? (e as Error).name : 'error';
  const message = String((e as Error)?.message ?? e).slice(0, 300);
  return { code: 'FETCH_AWS', message: `unexpected ${name}: ${quoted(message)}` };
}

/** renderItem, with a JSON value too deeply nested to re-encode reported against its reference. */
function renderOrFail(item: SecretItem, value: FetchedValue, mode: number): ReturnType<typeof renderItem> {
  try {
    return renderItem(item, value, mode);
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    return {
      failures: [
        {
          code: 'FETCH_FORMAT',
          ref: item.ref,
          message: 'the secret\'s JSON is nested too deeply to be re-encoded',
          hint: 'use format raw without key or explode',
        },
      ],
    };
  }
}

export async function execute(spec: FetchSpec, deps: ExecuteDeps): Promise<ExecuteResult> {
  const seen = new Map<string, FetchedValue>();
  const redact = (context: ReportContext) => redactor(valueStrings(seen.values()), reportedStrings(spec, deps.envRegion, context));
  try {
    const r = await fetchAndWrite(spec, deps, seen);
    return r.ok ? r : { ...r, redact: redact(r.context) };
  } catch (e) {
    // A bug: reported with everything fetched so far redacted from its message.
    return { ok: false, failures: [unexpectedFailure(e)], context: {}, redact: redact({}) };
  }
}

type Outcome = { ok: true; files: number; secrets: number; failedOver: number } | { ok: false; failures: Failure[]; context: ReportContext };

/** What one pass of fetching and rendering produced, item by item. */
export interface Collected {
  /** The files of every item that rendered. */
  files: OutputFile[];
  /** Marker entry of each item that rendered, by the item's index in the spec. */
  entries: Map<number, MarkerEntry>;
  failures: Failure[];
  /** Whether any failure came from AWS (worth asking STS who we are). */
  awsFailed: boolean;
  targets: number;
  /** Secrets whose value came from the failover region. */
  failedOver: number;
}

/**
 * Fetches every item of `spec` with `api` and renders it: the one fetch path of the fetcher and
 * the refresh sidecar. Values land in `seen` as they arrive, for redaction.
 */
export async function collect(
  spec: FetchSpec,
  api: AwsApi,
  envRegion: string | undefined,
  signal: AbortSignal,
  seen: Map<string, FetchedValue>,
  mode: FetchOptions['mode'] = 'start',
): Promise<Collected> {
  const { targets, itemTargets, failures } = plan(spec, envRegion);
  const paths = planPaths(spec, envRegion);
  failures.push(...paths.failures);
  for (const [i, key] of paths.itemTargets) itemTargets.set(i, key);
  let result: FetchResult;
  let failedOver = 0;
  if (spec.failoverRegion !== undefined) {
    const r = await fetchWithFailover(targets, spec.failoverRegion, api, { signal, values: seen, mode });
    failedOver = r.failedOver;
    result = r;
  } else result = await fetchTargets(targets, api, { signal, values: seen, mode });
  failures.push(...result.failures);
  if (paths.targets.length > 0) {
    const listed = await fetchPaths(paths.targets, api, { signal, values: seen });
    failures.push(...listed.failures);
    for (const [k, v] of listed.values) result.values.set(k, v);
    if (listed.awsFailed) result = { ...result, awsFailed: true };
  }

  const files: OutputFile[] = [];
  const entries = new Map<number, MarkerEntry>();
  spec.items.forEach((item, index) => {
    const key = itemTargets.get(index);
    const value = key === undefined ? undefined : result.values.get(key);
    if (value === undefined) return;
    const rendered = renderOrFail(item, value, spec.mode);
    if ('failures' in rendered) {
      failures.push(...rendered.failures);
      return;
    }
    files.push(...rendered.files);
    const entry: MarkerEntry = { ref: item.ref, files: rendered.files.map((f) => f.path) };
    if (value.arn !== undefined) entry.arn = value.arn;
    if (value.versionId !== undefined) entry.versionId = value.versionId;
    if (value.members !== undefined) {
      entry.members = value.members.map((m) => ({ name: m.name, ...(m.value.arn !== undefined && { arn: m.value.arn }), ...(m.value.versionId !== undefined && { versionId: m.value.versionId }) }));
    }
    entries.set(index, entry);
  });
  return { files, entries, failures, awsFailed: result.awsFailed, targets: targets.length, failedOver };
}

/** The region STS is called in: the pod's, else the environment's, else the first reference's. */
export function stsRegionOf(spec: FetchSpec, envRegion: string | undefined): string {
  return spec.region ?? envRegion ?? plan(spec, envRegion).targets[0]?.region ?? planPaths(spec, envRegion).targets[0]?.region ?? 'us-east-1';
}

/** Who the calls were made as, for a failure report, within `leftMs`. */
export async function identityContext(api: AwsApi, stsRegion: string, leftMs: number): Promise<ReportContext> {
  const context: ReportContext = {};
  const left = Math.floor(Math.min(IDENTITY_LOOKUP_MS, leftMs));
  if (left <= 0) context.identityError = 'not asked, the fetch deadline had passed';
  else {
    const signal = AbortSignal.timeout(left);
    try {
      context.identity = await untilAborted(api.callerIdentity(stsRegion, signal), signal);
    } catch (e) {
      const name = (e as { name?: string }).name ?? 'Error';
      context.identityError = `STS GetCallerIdentity failed: ${name === 'AbortError' ? 'no answer in time' : name}`;
    }
  }
  return context;
}

/** Without an identity, a failure naming every reference, before any AWS call. */
export function noIdentity(spec: FetchSpec, failure: Failure, envRegion: string | undefined): Failure[] {
  const { targets, failures } = plan(spec, envRegion);
  const paths = planPaths(spec, envRegion);
  failures.push(...paths.failures);
  const refs = [...targets, ...paths.targets].map((t) => t.reference.id);
  const message = refs.length > 0 ? `${failure.message} (${refs.length} reference(s) not fetched: ${refs.join(', ')})` : failure.message;
  return [...failures, { ...failure, message }];
}

async function fetchAndWrite(spec: FetchSpec, deps: ExecuteDeps, seen: Map<string, FetchedValue>): Promise<Outcome> {
  const timeouts = { ...DEFAULT_TIMEOUTS, ...spec.timeouts };
  if ('failure' in deps.credentials) return { ok: false, failures: noIdentity(spec, deps.credentials.failure, deps.envRegion), context: {} };
  const stsRegion = stsRegionOf(spec, deps.envRegion);
  const api = deps.api(spec, stsRegion, deps.credentials.source);
  const deadline = new AbortController();
  // Monotonic: a step of the wall clock neither stretches nor cuts the deadline.
  const deadlineAt = performance.now() + timeouts.deadlineSeconds * 1000;
  const timer = setTimeout(() => deadline.abort(), timeouts.deadlineSeconds * 1000);
  let collected: Collected;
  try {
    collected = await collect(spec, api, deps.envRegion, deadline.signal, seen);
  } finally {
    clearTimeout(timer);
  }
  const { files, failures } = collected;
  if (failures.length === 0) failures.push(...findConflicts(files));
  if (failures.length === 0 && deps.budget !== undefined) {
    const over = checkVolume(files, deps.budget.memory, deps.budget.meter);
    if (over !== undefined) failures.push(over);
  }

  if (failures.length > 0) {
    // Asking STS who we are stays inside the deadline too: credentials that never resolved, or
    // an STS endpoint that never answers, must not hold the pod's start up.
    const context = collected.awsFailed ? await identityContext(api, stsRegion, deadlineAt - performance.now()) : {};
    return { ok: false, failures, context };
  }

  try {
    const entries = spec.items.map((_, i) => collected.entries.get(i)).filter((e): e is MarkerEntry => e !== undefined);
    const now = new Date().toISOString();
    const marker: Marker = { version: 1, fetchedAt: now, changedAt: now, secrets: entries };
    // Writing is inside the deadline too: the pod waits on this container.
    await writeSecrets(spec.dir, files, marker, { expired: () => performance.now() >= deadlineAt });
  } catch (e) {
    if (e instanceof FetchError) return { ok: false, failures: e.failures, context: {} };
    throw e;
  }
  return { ok: true, files: files.length, secrets: collected.targets, failedOver: collected.failedOver };
}

const USAGE = `usage: aws-secret-injector fetch [--dir <path>]
       aws-secret-injector refresh [--dir <path>]

fetch: fetches the secrets described by the ${SPEC_ENV} environment variable (set by the
webhook) and writes them as files, all or nothing, then the marker file .secrets-ready.

refresh: keeps running (the refresh sidecar); every refresh interval of the spec, fetches the
secrets again and rewrites the files that changed, then .secrets-ready. Exits 0 on SIGTERM, 1
when no refresh has succeeded for longer than the staleness bound.

  --dir <path>   write into <path> instead of the spec's dir (the volume's mount path)
`;

interface Args {
  command?: 'fetch' | 'refresh';
  dir?: string;
  help?: boolean;
  error?: string;
}

export function parseArgs(argv: string[]): Args {
  const command = argv[0] === 'fetch' || argv[0] === 'refresh' ? argv[0] : undefined;
  const args = command === undefined ? argv : argv.slice(1);
  const out: Args = command === 'refresh' ? { command } : {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === '-h' || a === '--help') out.help = true;
    else if (a === '--dir' || a.startsWith('--dir=')) {
      const v = a === '--dir' ? args[++i] : a.slice('--dir='.length);
      if (v === undefined || v === '') return { error: '--dir needs a path' };
      if (!isAbsolute(v)) return { error: `--dir must be an absolute path (got ${JSON.stringify(v)})` };
      out.dir = v;
    } else return { error: `unknown argument ${JSON.stringify(a)}` };
  }
  return out;
}

function writeTerminationLog(text: string): void {
  const explicit = process.env[TERMINATION_LOG_ENV];
  const path = explicit || DEFAULT_TERMINATION_LOG;
  // Outside a container /dev/termination-log does not exist; never create it there.
  if (!explicit && !existsSync(path)) return;
  try {
    writeFileSync(path, fitTerminationMessage(text));
  } catch (e) {
    process.stderr.write(`(could not write the termination message to ${path}: ${(e as Error).message})\n`);
  }
}

function fail(failures: Failure[], context: ReportContext, redact: Redactor): number {
  const report = formatReport(failures, context, redact);
  process.stderr.write(report);
  writeTerminationLog(report);
  return 1;
}

/**
 * The pod waits on this container: a call abandoned at the deadline may still hold a socket, which
 * must not keep the process alive, whichever entry (the fetcher bundle or the CLI) runs `run`.
 * The caller sets the exit code from `run`'s result before this fires.
 */
function exitSoon(): void {
  setTimeout(() => process.exit(), 1_000).unref();
}

export async function run(argv: string[]): Promise<number> {
  // The fetcher pins its Node version with its image; the SDK's notice about future versions is noise here.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const args = parseArgs(argv);
  if (args.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (args.error !== undefined) {
    process.stderr.write(`fetch: ${args.error}\n\n${USAGE}`);
    return 2;
  }
  const raw = process.env[SPEC_ENV];
  if (raw === undefined || raw.trim() === '') {
    return fail([{ code: 'FETCH_SPEC_INVALID', message: `${SPEC_ENV} is not set; it carries the list of secrets to fetch` }], {}, NOTHING_TO_REDACT);
  }
  const parsed = parseSpec(raw);
  if ('errors' in parsed) {
    return fail(parsed.errors.map((message) => ({ code: 'FETCH_SPEC_INVALID' as const, message: `${SPEC_ENV}: ${message}` })), {}, NOTHING_TO_REDACT);
  }
  const spec = args.dir !== undefined ? { ...parsed.spec, dir: args.dir } : parsed.spec;
  const network = networkFromEnv(process.env);
  if ('errors' in network) {
    return fail(
      network.errors.map((message) => ({
        code: 'FETCH_NETWORK' as const,
        message,
        hint: 'check the webhook\'s FETCHER_* network settings (chart values fetcher.network.*)',
      })),
      {},
      NOTHING_TO_REDACT,
    );
  }
  const envRegion = process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || undefined;
  const pod = sessionName(process.env[POD_NAMESPACE_ENV], process.env[POD_NAME_ENV]);
  const credentials = chooseCredentials(process.env);
  if (args.command === 'refresh') {
    // A sidecar's answers are bounded one by one; its passes come and go, so no total is kept.
    return runRefresh(spec, { credentials, api: awsApiFactory(pod, network.agents), ...(envRegion !== undefined && { envRegion }) });
  }
  const memory = cgroupMemory();
  const meter = new AnswerMeter(memory);
  const api = awsApiFactory(pod, network.agents, meter);
  const started = Date.now();
  let result: ExecuteResult;
  try {
    result = await execute(spec, { envRegion, credentials, api, budget: { memory, meter } });
  } catch (e) {
    // A bug outside execute (which reports its own with what it fetched redacted): nothing fetched yet.
    exitSoon();
    return fail([unexpectedFailure(e)], {}, NOTHING_TO_REDACT);
  }
  exitSoon();
  if (!result.ok) return fail(result.failures, result.context, result.redact);
  const from = result.failedOver > 0 ? ` (${result.failedOver} from the failover region ${spec.failoverRegion})` : '';
  process.stdout.write(`fetch: wrote ${result.files} file(s) from ${result.secrets} secret(s)${from} to ${spec.dir} in ${Date.now() - started} ms\n`);
  return 0;
}

/**
 * The AWS API of a fetch: the pod's session name, the spec's timeouts. Throttled calls are retried
 * until a call timeout before the deadline, so a fetch AWS kept throttling reports that, not the deadline.
 */
export function awsApiFactory(pod: string, agents?: Network['agents'], meter?: AnswerMeter): ExecuteDeps['api'] {
  return (s, stsRegion, source) => {
    const timeouts = { ...DEFAULT_TIMEOUTS, ...s.timeouts };
    const callTimeoutMs = timeouts.callSeconds * 1000;
    const deadlineMs = timeouts.deadlineSeconds * 1000;
    return createAwsApi({
      source,
      ...(s.roleArn !== undefined && { roleArn: s.roleArn }),
      sessionName: pod,
      stsRegion,
      callTimeoutMs,
      maxAttempts: Math.max(1, Math.floor(timeouts.maxAttempts)),
      throttleBudgetMs: Math.max(deadlineMs - Math.min(callTimeoutMs, deadlineMs / 4), 0),
      ...(agents !== undefined && { agents }),
      ...(meter !== undefined && { meter }),
    });
  };
}

/** The refresh sidecar: one AWS client set for the pod's life, the loop until SIGTERM or staleness. */
async function runRefresh(spec: FetchSpec, deps: ExecuteDeps): Promise<number> {
  if (spec.refresh === undefined) {
    return fail([{ code: 'FETCH_SPEC_INVALID', message: `${SPEC_ENV} sets no refresh interval; refresh needs one` }], {}, NOTHING_TO_REDACT);
  }
  if ('failure' in deps.credentials) return fail(noIdentity(spec, deps.credentials.failure, deps.envRegion), {}, NOTHING_TO_REDACT);
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  const refresher = new Refresher(spec, {
    api: deps.api(spec, stsRegionOf(spec, deps.envRegion), deps.credentials.source),
    ...(deps.envRegion !== undefined && { envRegion: deps.envRegion }),
    now: Date.now,
    monotonic: () => performance.now(),
    random: Math.random,
    sleep,
    log: (line) => process.stderr.write(`${new Date().toISOString()} ${line}\n`),
    report: writeTerminationLog,
    signal: (target) => signalContainer(target),
  });
  try {
    await refresher.resume();
    return await refresher.run(stop.signal);
  } catch (e) {
    return fail([unexpectedFailure(e)], {}, refresher.redactor());
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    exitSoon();
  }
}
