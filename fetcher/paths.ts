// Whole paths: a reference ending in `/*` brings every secret under it. Secrets Manager: every
// secret whose name starts with the prefix, listed with their values by BatchGetSecretValue with a
// `name` filter; SSM Parameter Store: every parameter under the path, GetParametersByPath,
// recursive, decrypted. Both paginated, and bounded by MAX_PATH_SECRETS: past it the fetch fails
// with the count rather than write a partial directory. Each secret becomes one member, named by
// the rest of its name after the prefix.

import { failure, type Failure } from './errors.js';
import { errorFacts, isThrottling, throttledFailure, untilAborted, type AwsApi, type FetchedValue, type FetchOptions } from './fetch.js';
import { isPathReference, parsePathReference, type PathReference } from './reference.js';
import { MAX_PATH_SECRETS, type FetchSpec } from './spec.js';

/** BatchGetSecretValue with filters returns at most 20 secrets a page; GetParametersByPath 10. */
export const SECRETS_PER_PAGE = 20;
export const PARAMETERS_PER_PAGE = 10;
/** Past the bound, pages are still counted (values dropped) up to this many secrets, for the message. */
const COUNT_UP_TO = 10 * MAX_PATH_SECRETS;

export interface PathTarget {
  key: string;
  reference: PathReference;
  region: string;
}

export interface PathPlan {
  targets: PathTarget[];
  /** Index of the item -> key of its target. */
  itemTargets: Map<number, string>;
  failures: Failure[];
}

export function planPaths(spec: Pick<FetchSpec, 'region' | 'items'>, envRegion?: string): PathPlan {
  const targets = new Map<string, PathTarget>();
  const itemTargets = new Map<number, string>();
  const failures: Failure[] = [];
  spec.items.forEach((item, index) => {
    if (!isPathReference(item.ref)) return;
    const parsed = parsePathReference(item.ref);
    if ('error' in parsed) {
      failures.push(failure('FETCH_SPEC_INVALID', `the reference ${parsed.error}`, { ref: item.ref }));
      return;
    }
    const reference = parsed.path;
    const region = reference.region ?? spec.region ?? (envRegion || undefined);
    if (region === undefined) {
      failures.push(
        failure('FETCH_NO_REGION', 'the path carries no region, and neither the spec nor AWS_REGION/AWS_DEFAULT_REGION sets one', {
          ref: item.ref,
          hint: "set the pod's region annotation (or AWS_REGION in the pod), or write the path as an ARN",
        }),
      );
      return;
    }
    const key = ['path', reference.service, region, reference.id].join('\u0000');
    if (!targets.has(key)) targets.set(key, { key, reference, region });
    itemTargets.set(index, key);
  });
  return { targets: [...targets.values()], itemTargets, failures };
}

export interface PathsResult {
  values: Map<string, FetchedValue>;
  failures: Failure[];
  awsFailed: boolean;
}

/** The account in an ARN (arn:partition:service:region:account:…). */
const accountOf = (arn: string | undefined): string | undefined => arn?.split(':')[4];

function listFailure(t: PathTarget, e: unknown, startedAt = Date.now()): Failure {
  const f = errorFacts(e);
  if (f.aborted) return failure('FETCH_DEADLINE', 'the path was not listed before the deadline passed', { ref: t.reference.id });
  const what = t.reference.service === 'ssm' ? 'GetParametersByPath' : 'BatchGetSecretValue';
  if (isThrottling(f.code)) return throttledFailure(t, what, f, undefined, startedAt);
  const extra: Omit<Failure, 'code' | 'message'> = { ref: t.reference.id, awsCode: f.code };
  if (/AccessDenied/.test(f.code)) {
    extra.hint =
      t.reference.service === 'ssm'
        ? `allow ssm:GetParametersByPath on ${t.reference.id.slice(0, -2)} and ssm:GetParameters on ${t.reference.id} to this identity (and kms:Decrypt for SecureStrings with a customer-managed key)`
        : `allow secretsmanager:BatchGetSecretValue and secretsmanager:ListSecrets (resource "*") and secretsmanager:GetSecretValue on the secrets under ${t.reference.prefix} to this identity`;
  }
  return failure('FETCH_AWS', `${what} in ${t.region} failed${f.status !== undefined ? ` (HTTP ${f.status})` : ''}`, extra);
}

function tooMany(t: PathTarget, count: number, more: boolean): Failure {
  return failure('FETCH_TOO_MANY', `${more ? 'more than ' : ''}${count} secrets are under this path, over the maximum of ${MAX_PATH_SECRETS}`, {
    ref: t.reference.id,
    hint: 'name a narrower path, or split it into several references',
  });
}

async function listSecrets(t: PathTarget & { reference: { service: 'secretsmanager' } }, api: AwsApi, signal: AbortSignal): Promise<{ members: NonNullable<FetchedValue['members']> } | { failure: Failure }> {
  const { prefix, account } = t.reference;
  const members: NonNullable<FetchedValue['members']> = [];
  let count = 0;
  let token: string | undefined;
  do {
    const out = await untilAborted(
      api.batchGetSecretValue(
        t.region,
        { Filters: [{ Key: 'name', Values: [prefix] }], MaxResults: SECRETS_PER_PAGE, ...(token !== undefined && { NextToken: token }) },
        signal,
      ),
      signal,
    );
    for (const s of out.SecretValues ?? []) {
      // The filter matches a prefix; names are checked here too, as is the account an ARN named.
      if (typeof s.Name !== 'string' || !s.Name.startsWith(prefix) || s.Name === prefix) continue;
      if (account !== undefined && accountOf(s.ARN) !== account) continue;
      if (++count > MAX_PATH_SECRETS) continue;
      const value: FetchedValue = {};
      if (typeof s.SecretString === 'string') value.text = s.SecretString;
      else if (s.SecretBinary instanceof Uint8Array) value.binary = s.SecretBinary;
      else return { failure: failure('FETCH_AWS', `BatchGetSecretValue returned neither a SecretString nor a SecretBinary for ${JSON.stringify(s.Name)}`, { ref: t.reference.id }) };
      if (s.ARN !== undefined) value.arn = s.ARN;
      if (s.VersionId !== undefined) value.versionId = s.VersionId;
      members.push({ name: s.Name.slice(prefix.length), value });
    }
    const error = (out.Errors ?? [])[0];
    if (error !== undefined) {
      const e = Object.assign(new Error(error.Message ?? ''), { name: error.ErrorCode ?? 'UnknownError', $fault: 'client' as const });
      return { failure: listFailure(t, e) };
    }
    token = out.NextToken;
  } while (token !== undefined && token !== '' && count <= COUNT_UP_TO);
  if (count > MAX_PATH_SECRETS) return { failure: tooMany(t, Math.min(count, COUNT_UP_TO), count > COUNT_UP_TO) };
  return { members };
}

async function listParameters(t: PathTarget & { reference: { service: 'ssm' } }, api: AwsApi, signal: AbortSignal): Promise<{ members: NonNullable<FetchedValue['members']> } | { failure: Failure }> {
  const { path } = t.reference;
  const members: NonNullable<FetchedValue['members']> = [];
  let count = 0;
  let token: string | undefined;
  do {
    const out = await untilAborted(
      api.getParametersByPath(
        t.region,
        { Path: path, Recursive: true, WithDecryption: true, MaxResults: PARAMETERS_PER_PAGE, ...(token !== undefined && { NextToken: token }) },
        signal,
      ),
      signal,
    );
    for (const p of out.Parameters ?? []) {
      if (typeof p.Name !== 'string' || !p.Name.startsWith(`${path}/`)) continue;
      if (++count > MAX_PATH_SECRETS) continue;
      if (typeof p.Value !== 'string') return { failure: failure('FETCH_AWS', `GetParametersByPath returned no value for ${JSON.stringify(p.Name)}`, { ref: t.reference.id }) };
      const value: FetchedValue = { text: p.Value };
      if (p.ARN !== undefined) value.arn = p.ARN;
      if (p.Version !== undefined) value.versionId = String(p.Version);
      members.push({ name: p.Name.slice(path.length + 1), value });
    }
    token = out.NextToken;
  } while (token !== undefined && token !== '' && count <= COUNT_UP_TO);
  if (count > MAX_PATH_SECRETS) return { failure: tooMany(t, Math.min(count, COUNT_UP_TO), count > COUNT_UP_TO) };
  return { members };
}

/** Lists every path, one after another (each is a paginated walk); values land in `opts.values` by target key. */
export async function fetchPaths(targets: PathTarget[], api: AwsApi, opts: FetchOptions): Promise<PathsResult> {
  const values = opts.values ?? new Map<string, FetchedValue>();
  const failures: Failure[] = [];
  let awsFailed = false;
  for (const t of targets) {
    let r: { members: NonNullable<FetchedValue['members']> } | { failure: Failure };
    const startedAt = Date.now();
    try {
      r = t.reference.service === 'ssm' ? await listParameters(t as PathTarget & { reference: { service: 'ssm' } }, api, opts.signal) : await listSecrets(t as PathTarget & { reference: { service: 'secretsmanager' } }, api, opts.signal);
    } catch (e) {
      r = { failure: listFailure(t, e, startedAt) };
    }
    if ('failure' in r) {
      awsFailed ||= r.failure.code === 'FETCH_AWS' || r.failure.code === 'FETCH_THROTTLED';
      failures.push(r.failure);
      continue;
    }
    // By name, so files and the marker list them the same way on every pass.
    r.members.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    values.set(t.key, { members: r.members });
  }
  return { values, failures, awsFailed };
}
