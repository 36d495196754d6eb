// References -> values. The AWS calls go through `AwsApi` (aws.ts implements it with the SDK;
// unit tests pass fakes), so this module decides only what to call, in which region, in what
// batches, and how each failure is reported.
//
// Secrets Manager: secrets that share a region (the identity is one per pod) and ask for no
// version are fetched with BatchGetSecretValue, at most 20 per call; the others with
// GetSecretValue. SSM Parameter Store: GetParameters, at most 10 names per call, WithDecryption.
// All calls run concurrently up to a bound, under one deadline.
//
// What a fleet can afford (docs/scale.md): a batch is one call where 20 would be, but its quota is
// a hundredth of GetSecretValue's (quotas.ts). A pod starting (mode 'start') is waited for: a
// throttled batch is not retried but split into GetSecretValue calls at once, so a rollout that
// overruns the batch quota spills into the larger one. The refresh sidecar (mode 'refresh') pays
// per call and has the interval to wait in: its batches are retried when throttled (full jitter,
// retry.ts), and split only when the retry budget is spent.

import type {
  BatchGetSecretValueCommandInput,
  BatchGetSecretValueCommandOutput,
  GetSecretValueCommandInput,
  GetSecretValueCommandOutput,
} from '@aws-sdk/client-secrets-manager';
import type {
  GetParametersByPathCommandInput,
  GetParametersByPathCommandOutput,
  GetParametersCommandInput,
  GetParametersCommandOutput,
} from '@aws-sdk/client-ssm';
import { failure, quoted, type Failure } from './errors.js';
import { describeQuota, PARAMETERS_PER_CALL, SECRETS_PER_BATCH } from './quotas.js';
import { isPathReference, parseReference, type Reference } from './reference.js';
import type { FetchSpec, SecretItem } from './spec.js';
import type { Throttled } from './retry.js';

export type BatchOutput = Pick<BatchGetSecretValueCommandOutput, 'SecretValues' | 'Errors' | 'NextToken'>;
export type GetOutput = Pick<GetSecretValueCommandOutput, 'ARN' | 'Name' | 'VersionId' | 'SecretString' | 'SecretBinary'>;
export type ParametersOutput = Pick<GetParametersCommandOutput, 'Parameters' | 'InvalidParameters'>;
export type ParametersByPathOutput = Pick<GetParametersByPathCommandOutput, 'Parameters' | 'NextToken'>;

/** The AWS calls the fetcher makes, one identity, the region explicit on every call. */
export interface AwsApi {
  getSecretValue(region: string, input: GetSecretValueCommandInput, signal: AbortSignal): Promise<GetOutput>;
  /** `failFast`: a throttled answer is not retried (the caller splits the batch instead). */
  batchGetSecretValue(region: string, input: BatchGetSecretValueCommandInput, signal: AbortSignal, how?: { failFast?: boolean }): Promise<BatchOutput>;
  getParameters(region: string, input: GetParametersCommandInput, signal: AbortSignal): Promise<ParametersOutput>;
  /** Whole SSM paths (paths.ts). */
  getParametersByPath(region: string, input: GetParametersByPathCommandInput, signal: AbortSignal): Promise<ParametersByPathOutput>;
  /** The ARN from STS GetCallerIdentity, for failure reports. */
  callerIdentity(region: string, signal: AbortSignal): Promise<string>;
  /** Every API AWS throttled so far, with how often and over how long (aws.ts keeps count). */
  throttled?(): Throttled[];
  /** Drops the credentials resolved so far: the next call resolves them again (AWS held them as expired). */
  forgetCredentials?(): void;
}

/**
 * AWS error codes that say the credentials themselves are no longer good (whatever their stated
 * expiry: a node clock behind AWS's keeps them past it), so they must be resolved again.
 */
export const STALE_CREDENTIAL_CODES: ReadonlySet<string> = new Set(['ExpiredToken', 'ExpiredTokenException', 'InvalidClientTokenId']);

export { PARAMETERS_PER_CALL, SECRETS_PER_BATCH };
const ANSWER_HINT =
  "an endpoint that is not AWS (a proxy, an emulator) answered more than AWS ever does; or raise the fetcher's memory limit (chart fetcher.resources.limits.memory) if many large secrets are fetched at once";

/** Calls in flight at once: enough to hide latency, few enough not to trip throttling. */
export const DEFAULT_CONCURRENCY = 8;

/** One thing to fetch; items that ask for the same secret and version share one. */
export interface Target {
  key: string;
  reference: Reference;
  region: string;
  versionStage?: string;
  versionId?: string;
}

export interface FetchedValue {
  /** SecretString, or an SSM parameter's Value. */
  text?: string;
  /** SecretBinary, as bytes. */
  binary?: Uint8Array;
  arn?: string;
  versionId?: string;
  /** A whole path's secrets (paths.ts), each named by the rest of its name; no text of its own. */
  members?: Array<{ name: string; value: FetchedValue }>;
}

export interface Plan {
  targets: Target[];
  /** Index of the item -> key of its target. */
  itemTargets: Map<number, string>;
  failures: Failure[];
}

export interface FetchResult {
  values: Map<string, FetchedValue>;
  failures: Failure[];
  /** Key of each target that failed on its own -> its failure and whether AWS refused it (HTTP 4xx). */
  failed: Map<string, { failure: Failure; clientError: boolean }>;
  /** Whether any failure came from AWS (worth asking STS who we are). */
  awsFailed: boolean;
  /** Batches AWS throttled that were fetched as single GetSecretValue calls instead. */
  splitBatches?: number;
}

/** The region of a reference: its ARN's, else the spec's, else AWS_REGION / AWS_DEFAULT_REGION. */
export function resolveRegion(reference: Pick<Reference, 'region'>, spec: Pick<FetchSpec, 'region'>, envRegion?: string): string | undefined {
  return reference.region ?? spec.region ?? (envRegion || undefined);
}

/** A reference (or whole path) that resolveRegion finds no region for. */
export function noRegion(ref: string): Failure {
  return failure('FETCH_NO_REGION', 'the reference carries no region, and neither the spec nor AWS_REGION/AWS_DEFAULT_REGION sets one', {
    ref,
    hint: "use the secret's full ARN, or set the pod's region annotation (or AWS_REGION in the pod)",
  });
}

export function targetKey(t: Omit<Target, 'key'>): string {
  return [t.reference.service, t.region, t.reference.id, t.versionStage ?? '', t.versionId ?? ''].join('\u0000');
}

export function plan(spec: Pick<FetchSpec, 'region' | 'items'>, envRegion?: string): Plan {
  const targets = new Map<string, Target>();
  const itemTargets = new Map<number, string>();
  const failures: Failure[] = [];
  spec.items.forEach((item: SecretItem, index) => {
    // Whole paths (`prefix/*`) are listed, not got: paths.ts plans them.
    if (isPathReference(item.ref)) return;
    const parsed = parseReference(item.ref);
    if ('error' in parsed) {
      failures.push(failure('FETCH_SPEC_INVALID', `the reference ${parsed.error}`, { ref: item.ref }));
      return;
    }
    const reference = parsed.reference;
    const region = resolveRegion(reference, spec, envRegion);
    if (region === undefined) {
      failures.push(noRegion(item.ref));
      return;
    }
    if (reference.service === 'ssm' && (item.versionStage !== undefined || item.versionId !== undefined)) {
      failures.push(
        failure('FETCH_SPEC_INVALID', 'versionStage and versionId apply to Secrets Manager secrets, not SSM parameters', { ref: item.ref }),
      );
      return;
    }
    const t: Omit<Target, 'key'> = { reference, region };
    if (item.versionStage !== undefined) t.versionStage = item.versionStage;
    if (item.versionId !== undefined) t.versionId = item.versionId;
    const key = targetKey(t);
    if (!targets.has(key)) targets.set(key, { key, ...t });
    itemTargets.set(index, key);
  });
  return { targets: [...targets.values()], itemTargets, failures };
}

/**
 * Splits targets into calls of at most `size`, first fit, never putting two that `clash` into one
 * call: an answer is matched to its request by name or ARN, and no answer must fit two requests.
 */
export function callsOf(list: Target[], size: number, clash: (a: Target, b: Target) => boolean): Target[][] {
  const out: Target[][] = [];
  for (const t of list) {
    const call = out.find((c) => c.length < size && !c.some((u) => clash(t, u)));
    if (call) call.push(t);
    else out.push([t]);
  }
  return out;
}

/** The names a Secrets Manager answer for `t` may carry (a complete-looking ARN may be a partial one). */
function answerNames(t: Target): string[] {
  const r = t.reference;
  if (r.kind !== 'arn') return [r.name];
  return [r.name, r.id.slice(r.id.indexOf(':secret:') + ':secret:'.length)];
}

/**
 * A name is answered with the secret of the caller's account, an ARN with the secret it names,
 * wherever it lives, both carrying a Name. In one batch a name reference and an ARN reference of
 * the same name (another account's secret, say) would each find the other's answer by Name.
 */
export function secretsClash(a: Target, b: Target): boolean {
  if ((a.reference.kind === 'name') === (b.reference.kind === 'name')) return false;
  const [name, other] = a.reference.kind === 'name' ? [a, b] : [b, a];
  return answerNames(other).includes(name.reference.id);
}

/** GetParameters answers carry the Name; parameters of one name (in two accounts) go to separate calls. */
export function parametersClash(a: Target, b: Target): boolean {
  return a.reference.name === b.reference.name;
}

async function runBounded(tasks: Array<() => Promise<void>>, limit: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const task = tasks[next++] as () => Promise<void>;
      await task();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
}

/** Rejects with an AbortError once `signal` aborts, even if `promise` never settles. */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(abortError());
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortError());
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

function abortError(): Error {
  const e = new Error('the fetch deadline passed');
  e.name = 'AbortError';
  return e;
}

/** A fetch failure tagged by where it happened, so credential problems are reported once. */
export class CredentialError extends Error {
  readonly awsCode: string;
  readonly stage: 'credentials' | 'assume-role';
  constructor(stage: 'credentials' | 'assume-role', awsCode: string, message: string) {
    super(message);
    this.name = 'CredentialError';
    this.stage = stage;
    this.awsCode = awsCode;
  }
}

interface ErrorFacts {
  code: string;
  message?: string;
  status?: number;
  aborted: boolean;
}

/**
 * What may be said about an error. The SDK's own message is kept only for service exceptions
 * (AWS wrote it, it describes the request, not the payload) and cut short; anything else is
 * reduced to its name and code, since a parser's message may quote a response body.
 */
export function errorFacts(e: unknown): ErrorFacts {
  if (e instanceof CredentialError) return { code: e.awsCode, message: e.message, aborted: false };
  const err = (typeof e === 'object' && e !== null ? e : {}) as {
    name?: unknown;
    code?: unknown;
    message?: unknown;
    $fault?: unknown;
    $metadata?: { httpStatusCode?: number };
  };
  const name = typeof err.name === 'string' ? err.name : 'Error';
  if (name === 'AbortError') return { code: 'AbortError', aborted: true };
  const isService = err.$fault === 'client' || err.$fault === 'server';
  const facts: ErrorFacts = { code: typeof err.code === 'string' && !isService ? err.code : name, aborted: false };
  const status = err.$metadata?.httpStatusCode;
  if (status !== undefined) facts.status = status;
  if (isService && typeof err.message === 'string' && err.message !== '' && err.message !== 'UnknownError') {
    facts.message = err.message.length > 300 ? `${err.message.slice(0, 300)}…` : err.message;
  }
  return facts;
}

function secretResource(t: Target): string {
  const r = t.reference;
  if (r.kind === 'arn') return r.id;
  if (r.kind === 'partial-arn') return `${r.id}-??????`;
  return `arn:aws:secretsmanager:${t.region}:<account>:secret:${r.name}-??????`;
}

function parameterResource(t: Target): string {
  return t.reference.id;
}

/** The hint for an AWS error code: the IAM action and resource to allow, the region, known pitfalls. */
export function hintFor(t: Target, code: string, via: 'get' | 'batch' | 'parameters'): string | undefined {
  const r = t.reference;
  const where = `in region ${t.region}`;
  if (r.service === 'ssm') {
    if (/AccessDenied/.test(code)) {
      return `allow ssm:GetParameters on ${parameterResource(t)} to this identity (and kms:Decrypt on the parameter's KMS key if it is a SecureString with a customer-managed key)`;
    }
    if (code === 'ParameterNotFound') return `no parameter ${r.name} exists ${where} in account ${r.account}`;
  } else {
    if (/AccessDenied/.test(code)) {
      const action =
        via === 'batch'
          ? `secretsmanager:BatchGetSecretValue (resource "*") and secretsmanager:GetSecretValue on ${secretResource(t)}`
          : `secretsmanager:GetSecretValue on ${secretResource(t)}`;
      return `allow ${action} to this identity, and kms:Decrypt on the secret's KMS key if it is a customer-managed key; check the secret's resource policy too`;
    }
    if (code === 'ResourceNotFoundException') {
      if (t.versionStage !== undefined || t.versionId !== undefined) {
        const v = t.versionStage !== undefined ? `stage ${t.versionStage}` : `id ${t.versionId}`;
        return `the secret ${r.name} ${where} has no version with ${v}, or the secret itself does not exist`;
      }
      if (r.kind === 'name') return `no secret named ${r.name} exists ${where} in this identity's account; a secret in another account needs its complete ARN`;
      if (r.kind === 'partial-arn') {
        return `no secret named ${r.name} exists ${where} in account ${r.account}; a partial ARN (without the 6-character suffix) matches only the secret of exactly that name: prefer the complete ARN`;
      }
      return `no secret with this ARN exists ${where}; if "${r.id.slice(-7)}" is part of the secret's name rather than the suffix Secrets Manager appended, use the complete ARN (the name followed by "-" and 6 more characters)`;
    }
    if (code === 'DecryptionFailure') return `allow kms:Decrypt on the secret's KMS key to this identity (in the key policy or an IAM policy the key policy honours)`;
    if (code === 'InvalidRequestException') return 'the secret may be scheduled for deletion, or the version requested is not valid';
  }
  if (isThrottling(code)) return THROTTLE_HINT;
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/.test(code)) {
    return "the endpoint's certificate is not signed by a CA the fetcher trusts: a TLS-inspecting proxy or a private endpoint needs its CA in the fetcher's CA bundle (webhook setting FETCHER_CA_BUNDLE_CONFIGMAP)";
  }
  if (/Timeout|ECONNREFUSED|ECONNRESET|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|NetworkingError/.test(code)) {
    return `check the network path to the ${r.service === 'ssm' ? 'SSM' : 'Secrets Manager'} endpoint ${where} (VPC endpoint, proxy, egress rules, AWS_ENDPOINT_URL)`;
  }
  return undefined;
}

export const isThrottling = (code: string): boolean => /Throttl|TooManyRequests|RequestLimitExceeded|SlowDown/.test(code);

export const THROTTLE_HINT =
  "AWS's request quota is per account and Region, shared by every pod: raise it where AWS allows, spread the rollout (fewer pods starting at once), or give pods fewer secrets (one secret holding several keys, read with key or explode)";

/** "GetSecretValue in eu-west-1: 12 throttled answers over 41.5 s" for each API AWS throttled. */
export function throttleSummary(list: Throttled[]): string {
  return list.map((x) => `${x.api} in ${x.region}: ${x.count} throttled answer(s) over ${((x.lastAt - x.firstAt) / 1000).toFixed(1)} s`).join('; ');
}

/** A call that AWS kept throttling until the retry budget was spent: the API, its quota, how long it tried. */
export function throttledFailure(
  t: { reference: { id: string }; region: string },
  api: string,
  f: Pick<ErrorFacts, 'code'>,
  seen: Throttled | undefined,
  startedAt: number,
): Failure {
  const tried = ((Date.now() - startedAt) / 1000).toFixed(1);
  const count = seen !== undefined ? `, ${seen.count} throttled answer(s) in this pod` : '';
  const quota = describeQuota(api);
  return failure(
    'FETCH_THROTTLED',
    `${api} in ${t.region} was throttled by AWS (${f.code}) for ${tried} s of retries${count}; the fetcher gave up${quota !== undefined ? `. Quota: ${quota}` : ''}`,
    { ref: t.reference.id, awsCode: f.code, hint: THROTTLE_HINT },
  );
}

function awsFailure(t: Target, e: unknown, via: 'get' | 'batch' | 'parameters', throttled: Throttled[] = [], startedAt = Date.now()): Failure {
  const f = errorFacts(e);
  const what = t.reference.service === 'ssm' ? 'GetParameters' : via === 'batch' ? 'BatchGetSecretValue' : 'GetSecretValue';
  if (f.aborted) {
    const held = throttled.filter((x) => x.region === t.region || x.api.startsWith('Assume'));
    if (held.length > 0) {
      return failure('FETCH_DEADLINE', `not fetched before the deadline passed, while AWS throttled this pod's calls (${throttleSummary(held)})`, {
        ref: t.reference.id,
        hint: THROTTLE_HINT,
      });
    }
    return failure('FETCH_DEADLINE', 'not fetched before the deadline passed', {
      ref: t.reference.id,
      hint: 'raise the fetch deadline, or check why AWS answers slowly (network path, throttling)',
    });
  }
  if (isThrottling(f.code)) return throttledFailure(t, what, f, throttled.find((x) => x.api === what && x.region === t.region), startedAt);
  const status = f.status !== undefined ? ` (HTTP ${f.status})` : '';
  const msg = `${what} ${'in ' + t.region} failed${status}${f.message !== undefined ? `: ${quoted(f.message)}` : ''}`;
  const extra: Omit<Failure, 'code' | 'message'> = { ref: t.reference.id, awsCode: f.code };
  const hint = hintFor(t, f.code, via);
  if (hint !== undefined) extra.hint = hint;
  return failure('FETCH_AWS', msg, extra);
}

function credentialFailure(e: CredentialError, refs: string[]): Failure {
  if (isThrottling(e.awsCode)) {
    const api = e.stage === 'assume-role' ? 'AssumeRole' : 'AssumeRoleWithWebIdentity';
    return failure(
      'FETCH_THROTTLED',
      `${api} (STS) was throttled by AWS (${e.awsCode}) until the fetcher gave up; no credentials (${refs.length} reference(s) not fetched: ${refs.join(', ')}). Quota: ${describeQuota(api)}`,
      { awsCode: e.awsCode, hint: THROTTLE_HINT },
    );
  }
  const hint =
    e.stage === 'assume-role'
      ? "the role's trust policy must allow sts:AssumeRole (and sts:TagSession if used) by the pod's identity, and that identity needs sts:AssumeRole on the role"
      : 'give the pod an AWS identity: IRSA (eks.amazonaws.com/role-arn on its service account) or an EKS Pod Identity association';
  const what = e.stage === 'assume-role' ? 'assuming the role failed' : 'no AWS credentials could be obtained';
  return failure('FETCH_AWS', `${what}: ${quoted(e.message)} (${refs.length} reference(s) not fetched: ${refs.join(', ')})`, {
    awsCode: e.awsCode,
    hint,
  });
}

/** Whether `arn` is `id` (a partial ARN) followed by the 6-character suffix Secrets Manager appends. */
const completes = (arn: string | undefined, id: string): boolean =>
  arn !== undefined && arn.length === id.length + 7 && arn.startsWith(`${id}-`);

function matchesSecret(t: Target, arn: string | undefined, name: string | undefined): boolean {
  const r = t.reference;
  if (r.kind === 'partial-arn') return completes(arn, r.id);
  if (r.kind === 'name') return name === r.id;
  return arn === r.id;
}

/** The one answer among `matches`, 'ambiguous' if they are different secrets. */
function single<V extends { ARN?: string }>(matches: V[]): V | 'ambiguous' | undefined {
  if (matches.length > 1 && new Set(matches.map((v) => v.ARN)).size > 1) return 'ambiguous';
  return matches[0];
}

/**
 * The batch answer for `t`. BatchGetSecretValue answers with each secret's complete ARN, not the
 * id asked for. A name ending in "-" and six letters or digits ("db-secret") makes a partial ARN
 * look complete, so an ARN with no exact match is also tried as a partial one. Two different
 * secrets fitting one request (callsOf keeps that from happening) are never settled by order.
 */
function findInBatch<V extends { ARN?: string; Name?: string }>(t: Target, values: V[]): V | 'ambiguous' | undefined {
  const exact = single(values.filter((v) => matchesSecret(t, v.ARN, v.Name)));
  if (exact !== undefined || t.reference.kind !== 'arn') return exact;
  const id = t.reference.id;
  return single(values.filter((v) => completes(v.ARN, id)));
}

function secretValue(out: GetOutput): FetchedValue {
  const v: FetchedValue = {};
  // Types checked: an endpoint (a proxy, an emulator) may answer a number, and the SDK passes it on.
  if (typeof out.SecretString === 'string') v.text = out.SecretString;
  else if (out.SecretBinary instanceof Uint8Array) v.binary = out.SecretBinary;
  if (out.ARN !== undefined) v.arn = out.ARN;
  if (out.VersionId !== undefined) v.versionId = out.VersionId;
  return v;
}

export interface FetchOptions {
  signal: AbortSignal;
  /** A pod starting (the default) or the refresh sidecar: see the top of this file. */
  mode?: 'start' | 'refresh';
  /** Where values go as they arrive (default: a new map); the caller keeps what was fetched even if a bug throws. */
  values?: Map<string, FetchedValue>;
  concurrency?: number;
}

export async function fetchTargets(targets: Target[], api: AwsApi, opts: FetchOptions): Promise<FetchResult> {
  const { signal } = opts;
  const values = opts.values ?? new Map<string, FetchedValue>();
  const failures: Failure[] = [];
  const credentialFailures = new Map<string, { error: CredentialError; refs: string[] }>();
  let awsFailed = false;

  const failed = new Map<string, { failure: Failure; clientError: boolean }>();
  let splitBatches = 0;
  const record = (t: Target, f: Failure, clientError: boolean) => {
    failures.push(f);
    failed.set(t.key, { failure: f, clientError });
  };
  const fail = (t: Target, e: unknown, via: 'get' | 'batch' | 'parameters', startedAt = Date.now()) => {
    if (e instanceof CredentialError) {
      const k = `${e.stage}\u0000${e.awsCode}\u0000${e.message}`;
      const seen = credentialFailures.get(k);
      if (seen) seen.refs.push(t.reference.id);
      else credentialFailures.set(k, { error: e, refs: [t.reference.id] });
      return;
    }
    if ((e as Error)?.name === 'AnswerTooLarge') {
      // The fetcher's own words (budget.ts), with its numbers: not AWS's.
      record(t, failure('FETCH_BUDGET', (e as Error).message.split('\n')[0]!, { ref: t.reference.id, hint: ANSWER_HINT }), false);
      return;
    }
    awsFailed = true;
    const f = errorFacts(e);
    // A per-secret error inside a batch answer (no HTTP status of its own) is AWS refusing that secret.
    const clientError = f.status !== undefined ? f.status >= 400 && f.status < 500 : !f.aborted && (e as { $fault?: unknown }).$fault === 'client';
    record(t, awsFailure(t, e, via, api.throttled?.() ?? [], startedAt), clientError);
  };
  const noValue = (t: Target, what: string) => {
    awsFailed = true;
    record(t, failure('FETCH_AWS', `${what} returned neither a SecretString (text) nor a SecretBinary (bytes)`, { ref: t.reference.id }), false);
  };

  const getOne = async (t: Target) => {
    const input: GetSecretValueCommandInput = { SecretId: t.reference.id };
    if (t.versionStage !== undefined) input.VersionStage = t.versionStage;
    if (t.versionId !== undefined) input.VersionId = t.versionId;
    const startedAt = Date.now();
    try {
      const out = await untilAborted(api.getSecretValue(t.region, input, signal), signal);
      const v = secretValue(out);
      if (v.text === undefined && v.binary === undefined) noValue(t, 'GetSecretValue');
      else values.set(t.key, v);
    } catch (e) {
      fail(t, e, 'get', startedAt);
    }
  };

  const getBatch = async (region: string, batch: Target[]) => {
    let out: BatchOutput;
    const startedAt = Date.now();
    try {
      const how = { failFast: (opts.mode ?? 'start') === 'start' };
      out = await untilAborted(api.batchGetSecretValue(region, { SecretIdList: batch.map((t) => t.reference.id) }, signal, how), signal);
    } catch (e) {
      // An identity allowed GetSecretValue but not BatchGetSecretValue, or an endpoint that does
      // not know the operation, still gets its secrets one by one; so does a batch AWS throttled
      // (GetSecretValue's quota is 100 times larger).
      if (!(e instanceof CredentialError) && /AccessDenied|UnknownOperation|InvalidAction|NotImplemented/.test(errorFacts(e).code)) {
        await runBounded(batch.map((t) => () => getOne(t)), opts.concurrency ?? DEFAULT_CONCURRENCY);
        return;
      }
      if (!(e instanceof CredentialError) && isThrottling(errorFacts(e).code)) {
        splitBatches++;
        await runBounded(batch.map((t) => () => getOne(t)), opts.concurrency ?? DEFAULT_CONCURRENCY);
        return;
      }
      for (const t of batch) fail(t, e, 'batch', startedAt);
      return;
    }
    for (const t of batch) {
      const err = (out.Errors ?? []).find((x) => x.SecretId === t.reference.id);
      if (err) {
        const e = Object.assign(new Error(err.Message ?? ''), {
          name: err.ErrorCode ?? 'UnknownError',
          $fault: 'client' as const,
        });
        fail(t, e, 'batch');
        continue;
      }
      const found = findInBatch(t, out.SecretValues ?? []);
      if (found === 'ambiguous') {
        awsFailed = true;
        const arns = (out.SecretValues ?? []).filter((v) => matchesSecret(t, v.ARN, v.Name) || completes(v.ARN, t.reference.id)).map((v) => v.ARN);
        failures.push(
          failure('FETCH_AWS', `BatchGetSecretValue answered ${arns.length} different secrets that fit this reference (${arns.join(', ')}); none was used`, {
            ref: t.reference.id,
            hint: 'use the complete ARN of the secret meant',
          }),
        );
        continue;
      }
      if (!found) {
        awsFailed = true;
        record(t, failure('FETCH_AWS', 'BatchGetSecretValue answered neither a value nor an error for it', { ref: t.reference.id }), false);
        continue;
      }
      const v = secretValue(found);
      if (v.text === undefined && v.binary === undefined) noValue(t, 'BatchGetSecretValue');
      else values.set(t.key, v);
    }
  };

  const getParameters = async (region: string, batch: Target[]) => {
    let out: ParametersOutput;
    const startedAt = Date.now();
    try {
      out = await untilAborted(
        api.getParameters(region, { Names: batch.map((t) => t.reference.id), WithDecryption: true }, signal),
        signal,
      );
    } catch (e) {
      for (const t of batch) fail(t, e, 'parameters', startedAt);
      return;
    }
    const invalid = new Set(out.InvalidParameters ?? []);
    for (const t of batch) {
      const r = t.reference;
      if (invalid.has(r.id) || invalid.has(r.name)) {
        fail(t, Object.assign(new Error(`parameter ${r.name} not found`), { name: 'ParameterNotFound', $fault: 'client' as const }), 'parameters');
        continue;
      }
      // By ARN; by name only an answer that carries no ARN or one of the reference's account and
      // region (a call never holds two parameters of one name: parametersClash).
      const params = out.Parameters ?? [];
      const sameAccount = (arn: string | undefined) => arn === undefined || arn.split(':').slice(3, 5).join(':') === `${r.region}:${r.account}`;
      const p = params.find((x) => x.ARN === r.id) ?? params.find((x) => (x.Name === r.id || x.Name === r.name) && sameAccount(x.ARN));
      if (!p || typeof p.Value !== 'string') {
        awsFailed = true;
        record(t, failure('FETCH_AWS', 'GetParameters answered neither a value nor an error for it', { ref: r.id }), false);
        continue;
      }
      const v: FetchedValue = { text: p.Value };
      if (p.ARN !== undefined) v.arn = p.ARN;
      if (p.Version !== undefined) v.versionId = String(p.Version);
      values.set(t.key, v);
    }
  };

  const tasks: Array<() => Promise<void>> = [];
  const secrets = targets.filter((t) => t.reference.service === 'secretsmanager');
  const parameters = targets.filter((t) => t.reference.service === 'ssm');
  const plain = secrets.filter((t) => t.versionStage === undefined && t.versionId === undefined);
  const versioned = secrets.filter((t) => !plain.includes(t));
  for (const [region, group] of Map.groupBy(plain, (t) => t.region)) {
    for (const batch of callsOf(group, SECRETS_PER_BATCH, secretsClash)) {
      // A batch of one is a plain GetSecretValue: it needs one IAM action fewer.
      tasks.push(batch.length === 1 ? () => getOne(batch[0] as Target) : () => getBatch(region, batch));
    }
  }
  for (const t of versioned) tasks.push(() => getOne(t));
  for (const [region, group] of Map.groupBy(parameters, (t) => t.region)) {
    for (const batch of callsOf(group, PARAMETERS_PER_CALL, parametersClash)) tasks.push(() => getParameters(region, batch));
  }
  await runBounded(tasks, opts.concurrency ?? DEFAULT_CONCURRENCY);
  for (const { error, refs } of credentialFailures.values()) failures.push(credentialFailure(error, refs));
  return { values, failures, failed, awsFailed, splitBatches };
}

/** `reference` as it is named in `region`: an ARN with that region, a name as it is. */
export function inRegion(reference: Reference, region: string): Reference {
  if (reference.kind === 'name') return reference;
  const parts = reference.id.split(':');
  parts[3] = region;
  return { ...reference, id: parts.join(':'), region } as Reference;
}

export interface FailoverResult extends FetchResult {
  /** Targets whose value came from the failover region. */
  failedOver: number;
}

/**
 * Every target is asked in its own region and, at the same time, in `failoverRegion` (an ARN with
 * that region: Secrets Manager replicas keep the name and suffix). The rules of the Secrets Store
 * CSI provider's failoverRegion: a client error (HTTP 4xx) from either region fails the target;
 * otherwise the primary's value, else the failover's; neither answering fails it. Failures name
 * both regions. `values` is keyed by the primary targets only.
 */
export async function fetchWithFailover(targets: Target[], failoverRegion: string, api: AwsApi, opts: FetchOptions): Promise<FailoverResult> {
  const pairs = new Map<string, Target>();
  const failoverTargets: Target[] = [];
  for (const t of targets) {
    if (t.region === failoverRegion) continue;
    const f: Omit<Target, 'key'> = { ...t, reference: inRegion(t.reference, failoverRegion), region: failoverRegion };
    const target = { ...f, key: targetKey(f) };
    pairs.set(t.key, target);
    failoverTargets.push(target);
  }
  const both = await fetchTargets([...targets, ...failoverTargets], api, opts);
  const dropped = new Set<Failure>();
  const failures: Failure[] = [];
  const values = new Map<string, FetchedValue>();
  let failedOver = 0;
  for (const t of targets) {
    const f = pairs.get(t.key);
    const primary = both.values.get(t.key);
    if (f === undefined) {
      if (primary !== undefined) values.set(t.key, primary);
      continue;
    }
    const secondary = both.values.get(f.key);
    const ep = both.failed.get(t.key);
    const ef = both.failed.get(f.key);
    if (ep !== undefined) dropped.add(ep.failure);
    if (ef !== undefined) dropped.add(ef.failure);
    // Credentials that could not be had fail both alike; they are reported once, as they are.
    if (primary === undefined && secondary === undefined && ep === undefined && ef === undefined) continue;
    const refused = ep?.clientError || ef?.clientError;
    if (!refused && primary !== undefined) values.set(t.key, primary);
    else if (!refused && secondary !== undefined) {
      values.set(t.key, secondary);
      failedOver++;
    } else failures.push(bothRegions(t, f, ep, ef, refused === true));
  }
  for (const x of both.failures) if (!dropped.has(x)) failures.push(x);
  const primaryKeys = new Set(targets.map((t) => t.key));
  const failed = new Map([...both.failed].filter(([k]) => primaryKeys.has(k)));
  return { values, failures, failed, awsFailed: both.awsFailed, failedOver };
}

type Outcome = { failure: Failure; clientError: boolean } | undefined;

function bothRegions(p: Target, f: Target, ep: Outcome, ef: Outcome, refused: boolean): Failure {
  const said = (x: Outcome, t: Target) =>
    x === undefined
      ? `${t.region} answered`
      : x.failure.code === 'FETCH_DEADLINE'
        ? `${t.region} did not answer before the deadline`
        : `${x.failure.message}${x.failure.awsCode !== undefined ? ` (${x.failure.awsCode})` : ''}`;
  const why = refused
    ? `a client error in either region fails it (failover-region ${f.region})`
    : `neither its region nor the failover region ${f.region} answered`;
  const extra: Omit<Failure, 'code' | 'message'> = { ref: p.reference.id };
  // The refusal's code and hint: that is what must be fixed.
  const cause = (refused ? [ep, ef].find((x) => x?.clientError) : (ep ?? ef))?.failure;
  if (cause?.awsCode !== undefined) extra.awsCode = cause.awsCode;
  if (cause?.hint !== undefined) extra.hint = cause.hint;
  const code = !refused && ep?.failure.code === 'FETCH_DEADLINE' && ef?.failure.code === 'FETCH_DEADLINE' ? 'FETCH_DEADLINE' : 'FETCH_AWS';
  return failure(code, `${why}: in ${p.region}: ${said(ep, p)}; in ${f.region}: ${said(ef, f)}`, extra);
}
