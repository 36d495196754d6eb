// Whole paths: a reference ending in `/*` brings every secret under it. Secrets Manager: every
// secret whose name starts with the prefix, listed with their values by BatchGetSecretValue with a
// `name` filter; SSM Parameter Store: every parameter under the path, GetParametersByPath,
// recursive, decrypted. Both paginated, and bounded by MAX_PATH_SECRETS: past it the fetch fails
// with the count rather than write a partial directory. Each secret becomes one member, named by
// the rest of its name after the prefix.

import { failure, type Failure } from './errors.js';
import { errorFacts, isThrottling, noRegion, resolveRegion, throttledFailure, untilAborted, type AwsApi, type FetchedValue, type FetchOptions } from './fetch.js';
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
    const region = resolveRegion(reference, spec, envRegion);
    if (region === undefined) {
      failures.push(noRegion(item.ref));
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

type Members = NonNullable<FetchedValue['members']>;
type Listed = { members: Members } | { failure: Failure };
/** One page of a listing: its secrets (undefined: not under the path after all) and the next token. */
type Page<T> = { items: T[]; next?: string | undefined };

/**
 * Walks every page, keeping at most MAX_PATH_SECRETS members (and counting past it, for the
 * message); `member` turns an answer into a member, undefined when it is not under the path, or a
 * failure that ends the walk.
 */
async function listAll<T>(t: PathTarget, page: (token: string | undefined) => Promise<Page<T>>, member: (x: T) => Members[number] | Failure | undefined): Promise<Listed> {
  const members: Members = [];
  let count = 0;
  let token: string | undefined;
  do {
    const p = await page(token);
    for (const x of p.items) {
      const m = member(x);
      if (m === undefined) continue;
      if ('code' in m) return { failure: m };
      if (++count <= MAX_PATH_SECRETS) members.push(m);
    }
    token = p.next;
  } while (token !== undefined && token !== '' && count <= COUNT_UP_TO);
  if (count > MAX_PATH_SECRETS) return { failure: tooMany(t, Math.min(count, COUNT_UP_TO), count > COUNT_UP_TO) };
  return { members };
}

function listSecrets(t: PathTarget, reference: Extract<PathReference, { service: 'secretsmanager' }>, api: AwsApi, signal: AbortSignal): Promise<Listed> {
  const { prefix, account } = reference;
  return listAll(
    t,
    async (token) => {
      const input = { Filters: [{ Key: 'name' as const, Values: [prefix] }], MaxResults: SECRETS_PER_PAGE, ...(token !== undefined && { NextToken: token }) };
      const out = await untilAborted(api.batchGetSecretValue(t.region, input, signal), signal);
      const error = (out.Errors ?? [])[0];
      if (error !== undefined) throw Object.assign(new Error(error.Message ?? ''), { name: error.ErrorCode ?? 'UnknownError', $fault: 'client' as const });
      return { items: out.SecretValues ?? [], next: out.NextToken };
    },
    (s) => {
      // The filter matches a prefix (not by case alone, in places): names are checked here too, as
      // is the account an ARN named.
      if (typeof s.Name !== 'string' || !s.Name.startsWith(prefix) || s.Name === prefix) return undefined;
      if (account !== undefined && accountOf(s.ARN) !== account) return undefined;
      const value: FetchedValue = {};
      if (typeof s.SecretString === 'string') value.text = s.SecretString;
      else if (s.SecretBinary instanceof Uint8Array) value.binary = s.SecretBinary;
      else return failure('FETCH_AWS', `BatchGetSecretValue returned neither a SecretString nor a SecretBinary for ${JSON.stringify(s.Name)}`, { ref: reference.id });
      if (s.ARN !== undefined) value.arn = s.ARN;
      if (s.VersionId !== undefined) value.versionId = s.VersionId;
      return { name: s.Name.slice(prefix.length), value };
    },
  );
}

function listParameters(t: PathTarget, reference: Extract<PathReference, { service: 'ssm' }>, api: AwsApi, signal: AbortSignal): Promise<Listed> {
  const { path } = reference;
  return listAll(
    t,
    async (token) => {
      const input = { Path: path, Recursive: true, WithDecryption: true, MaxResults: PARAMETERS_PER_PAGE, ...(token !== undefined && { NextToken: token }) };
      const out = await untilAborted(api.getParametersByPath(t.region, input, signal), signal);
      return { items: out.Parameters ?? [], next: out.NextToken };
    },
    (p) => {
      if (typeof p.Name !== 'string' || !p.Name.startsWith(`${path}/`)) return undefined;
      if (typeof p.Value !== 'string') return failure('FETCH_AWS', `GetParametersByPath returned no value for ${JSON.stringify(p.Name)}`, { ref: reference.id });
      const value: FetchedValue = { text: p.Value };
      if (p.ARN !== undefined) value.arn = p.ARN;
      if (p.Version !== undefined) value.versionId = String(p.Version);
      return { name: p.Name.slice(path.length + 1), value };
    },
  );
}

/** Lists every path, one after another (each is a paginated walk); values land in `opts.values` by target key. */
export async function fetchPaths(targets: PathTarget[], api: AwsApi, opts: FetchOptions): Promise<PathsResult> {
  const values = opts.values ?? new Map<string, FetchedValue>();
  const failures: Failure[] = [];
  let awsFailed = false;
  for (const t of targets) {
    let r: Listed;
    const startedAt = Date.now();
    try {
      const ref = t.reference;
      r = ref.service === 'ssm' ? await listParameters(t, ref, api, opts.signal) : await listSecrets(t, ref, api, opts.signal);
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
