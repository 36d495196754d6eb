// The fetcher's input contract: what the init container receives. The webhook builds it from pod
// annotations (webhook/ imports this module); the fetcher only ever sees this, never annotations.
// It carries references and options, never secret values.

import { parsePointer } from './pointer.js';
import { isPathReference, parsePathReference, parseReference } from './reference.js';
import { parseTemplate } from './template.js';

/** The environment variable that carries the serialised spec (JSON). */
export const SPEC_ENV = 'SECRET_INJECTOR_SPEC';
/** Set by the webhook from the downward API; used for the STS session name when chaining roles. */
export const POD_NAME_ENV = 'SECRET_INJECTOR_POD_NAME';
export const POD_NAMESPACE_ENV = 'SECRET_INJECTOR_POD_NAMESPACE';
/** `allow` (set by the webhook's FETCHER_NODE_CREDENTIALS=allow): with no pod identity, the AWS
 *  SDK's default chain may be used (environment keys, profiles, the node's instance role). */
export const NODE_CREDENTIALS_ENV = 'SECRET_INJECTOR_NODE_CREDENTIALS';
/** Where the failure paragraph goes; Kubernetes shows this file in `kubectl describe pod`. */
export const TERMINATION_LOG_ENV = 'SECRET_INJECTOR_TERMINATION_LOG';
export const DEFAULT_TERMINATION_LOG = '/dev/termination-log';
/**
 * The fetcher's network, as the webhook's settings may set it (webhook FETCHER_<name>, chart
 * `fetcher.network.*`): an allow-list, so no setting can reach how the fetcher authenticates
 * (AWS_PROFILE, keys, AWS_ROLE_ARN). Why each is there: docs/configuration.md.
 */
export const NETWORK_ENV = [
  'HTTPS_PROXY',
  'HTTP_PROXY',
  'NO_PROXY',
  'AWS_USE_FIPS_ENDPOINT',
  'AWS_USE_DUALSTACK_ENDPOINT',
  'AWS_ENDPOINT_URL_SECRETS_MANAGER',
  'AWS_ENDPOINT_URL_SSM',
  'AWS_ENDPOINT_URL_STS',
] as const;
export type NetworkEnvName = (typeof NETWORK_ENV)[number];
/** Where the webhook mounts the CA bundle (a ConfigMap key) in the fetcher, read-only. */
export const CA_BUNDLE_DIR = '/etc/aws-secret-injector/ca';
export const CA_BUNDLE_FILE = `${CA_BUNDLE_DIR}/ca.crt`;
/** Node.js adds the certificates of this file to its public CAs for every TLS connection. */
export const CA_BUNDLE_ENV = 'NODE_EXTRA_CA_CERTS';
/** Written in each version beside every secret file (volume.ts): apps (and a refresh sidecar) can tell a complete set. */
export const MARKER_FILE = '.secrets-ready';
/**
 * The link naming the current version directory (fetcher/volume.ts); the versions are `..<time>.<hex>`.
 * Names starting with `..` are the writers' own, so no file or directory of a secret may take one.
 */
export const DATA_LINK = '..data';
export const RESERVED_PREFIX = '..';
/** Whether a path inside the mount takes a name the writers keep for themselves (the marker, `..`-names). */
export const isReservedPath = (path: string): boolean => path === MARKER_FILE || path.split('/').some((s) => s.startsWith(RESERVED_PREFIX));
/** The init container's args; the fetcher bundle and the full CLI both accept them. */
export const FETCH_ARGS: readonly string[] = ['fetch'];
/** The refresh sidecar's args: the same program and spec, kept running. */
export const REFRESH_ARGS: readonly string[] = ['refresh'];
/**
 * What the refresh sidecar's environment adds to the fetcher's: its runtime without the JIT. The
 * sidecar lives as long as the pod; with the JIT, optimised code grew its working set at every
 * refresh (12 -> 16 MiB over its first 10), without it the working set stays flat (9-10 MiB; 12
 * MiB over 1,000 cycles back to back) for about the same CPU per refresh. Measured by
 * bench/refresh.mjs.
 */
export const REFRESHER_ENV: Readonly<Record<string, string>> = { BUN_JSC_useJIT: 'false' };
/** Bounds of the refresh interval: more often buys nothing and costs API calls (Secrets Manager
 *  bills per call); a day is far below the 2^31-1 ms a timer can wait. */
export const MIN_REFRESH_SECONDS = 10;
export const MAX_REFRESH_SECONDS = 86_400;

/**
 * The most secrets one whole-path reference (`prefix/*`) may bring: each is a file and, on
 * Secrets Manager, a share of a paginated BatchGetSecretValue. Over it the fetch fails with the count.
 */
export const MAX_PATH_SECRETS = 100;
/** Signals the refresh sidecar may send the app after a refresh that changed its files. */
export const REFRESH_SIGNALS = ['SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGINT', 'SIGTERM', 'SIGQUIT', 'SIGWINCH'] as const;
export type RefreshSignalName = (typeof REFRESH_SIGNALS)[number];
export const DEFAULT_REFRESH_SIGNAL: RefreshSignalName = 'SIGHUP';
/**
 * Set by the webhook on the container `refresh-signal` names, to the container's name: the
 * sidecar finds the container's process by it in the shared process namespace (/proc/<pid>/environ
 * is readable by the same uid and gid, which the sidecar then runs as).
 */
export const SIGNAL_TARGET_ENV = 'SECRET_INJECTOR_SIGNAL_TARGET';

export const SPEC_VERSION = 1;
export const FORMATS = ['raw', 'json', 'env'] as const;
export type Format = (typeof FORMATS)[number];

export interface SecretItem {
  /** ARN, partial ARN, secret name, or SSM parameter ARN (see reference.ts). */
  ref: string;
  /** Path relative to `dir`. Required unless `explode`; with `explode` a sub-directory (default: `dir` itself). */
  file?: string;
  /** Extract one value of a JSON secret: a top-level key, or a JSON Pointer (RFC 6901) starting with `/`. */
  key?: string;
  /** Text with `{{ path }}` placeholders into the secret's JSON (template.ts), written instead of the value. */
  template?: string;
  /** Write every top-level key of a JSON secret as its own file, named `prefix + key`. */
  explode?: boolean;
  prefix?: string;
  versionStage?: string;
  versionId?: string;
  /** File mode; defaults to the spec's `mode`. */
  mode?: number;
  format?: Format;
}

export interface Timeouts {
  /** Per-attempt timeout of one AWS call. */
  callSeconds?: number;
  /** Overall deadline for the whole fetch, retries included. */
  deadlineSeconds?: number;
  /** Attempts per call, first one included. */
  maxAttempts?: number;
}

export interface RefreshSignal {
  /** The container whose process gets the signal (marked with SIGNAL_TARGET_ENV). */
  container: string;
  signal: RefreshSignalName;
}

export interface Refresh {
  /** Seconds between refreshes, before jitter. */
  intervalSeconds: number;
  /** Sent after a refresh that changed files, and only then. */
  signal?: RefreshSignal;
}

export interface FetchSpec {
  version: typeof SPEC_VERSION;
  /** Absolute path where the secrets volume is mounted in the init container. */
  dir: string;
  /** Pod-level region for references that carry none (secret names). */
  region?: string;
  /** A role to chain into with STS AssumeRole, from the pod's own identity. */
  roleArn?: string;
  /** A second region every secret is also asked for (see docs/iam.md, failover region). */
  failoverRegion?: string;
  /** Default file mode. */
  mode: number;
  items: SecretItem[];
  timeouts?: Timeouts;
  /** Set when the pod asked for `refresh`: the sidecar's interval. The one-shot fetch ignores it. */
  refresh?: Refresh;
}

export type SpecResult = { spec: FetchSpec } | { errors: string[] };

/** Upper bounds: an hour (the webhook's FETCH_DEADLINE_SECONDS allows no more; a timer of more
 *  than 2^31-1 ms would fire at once), and attempts a throttled API would still welcome. */
export const TIMEOUT_LIMITS: Required<Timeouts> = { callSeconds: 3600, deadlineSeconds: 3600, maxAttempts: 20 };

export const DEFAULT_MODE = 0o444;

const ROLE_ARN = /^arn:aws(-[a-z]+)*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/;
const FILE_SEGMENT = /^[A-Za-z0-9._-]+$/;

export function isValidRoleArn(value: string): boolean {
  return ROLE_ARN.test(value);
}

/** A relative path inside the mount: segments of letters, digits, `.`, `_`, `-`; no `.`/`..` segments. */
export function isSafeRelativePath(path: string): boolean {
  if (path === '' || path.startsWith('/') || path.length > 255) return false;
  return path.split('/').every((s) => FILE_SEGMENT.test(s) && s !== '.' && s !== '..');
}

/** Modes: rw for owner at most; never setuid/setgid/sticky or execute bits. */
export function isValidMode(mode: number): boolean {
  return Number.isInteger(mode) && mode >= 0 && mode <= 0o666 && (mode & 0o111) === 0 && (mode & 0o400) !== 0;
}

export function formatMode(mode: number): string {
  return `0${mode.toString(8).padStart(3, '0')}`;
}

/** Parses an octal mode string such as "0440" or "440". */
export function parseMode(value: string): number | undefined {
  if (!/^0?[0-7]{3}$/.test(value)) return undefined;
  return Number.parseInt(value, 8);
}

export function serialiseSpec(spec: FetchSpec): string {
  // Modes travel as octal strings so that `kubectl get pod -o yaml` stays readable.
  return JSON.stringify({
    ...spec,
    mode: formatMode(spec.mode),
    items: spec.items.map((item) => (item.mode === undefined ? item : { ...item, mode: formatMode(item.mode) })),
  });
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const ITEM_KEYS = new Set(['ref', 'file', 'key', 'template', 'explode', 'prefix', 'versionStage', 'versionId', 'mode', 'format']);
const SPEC_KEYS = new Set(['version', 'dir', 'region', 'roleArn', 'failoverRegion', 'mode', 'items', 'timeouts', 'refresh']);

function modeField(value: unknown, where: string, errors: string[]): number | undefined {
  if (value === undefined) return undefined;
  const mode = typeof value === 'string' ? parseMode(value) : undefined;
  if (mode === undefined || !isValidMode(mode)) {
    errors.push(`${where}: mode must be an octal string such as "0440" (owner-readable, no execute bits)`);
    return undefined;
  }
  return mode;
}

function optionalString(obj: Json, key: string, where: string, errors: string[]): string | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v === '') {
    errors.push(`${where}: ${key} must be a non-empty string`);
    return undefined;
  }
  return v;
}

/**
 * The rules on `key`, `template` and whole-path references that the webhook (at admission) and the
 * fetcher (on its input) both apply: problems, each naming the field.
 */
export function itemRules(item: SecretItem): string[] {
  const errors: string[] = [];
  if (item.key?.startsWith('/')) {
    const p = parsePointer(item.key);
    if ('error' in p) errors.push(`key: ${p.error}`);
  }
  if (item.template !== undefined) {
    const t = parseTemplate(item.template);
    if ('error' in t) errors.push(`template ${t.error}`);
    for (const k of ['key', 'explode', 'format'] as const) {
      if (item[k] !== undefined && !(k === 'format' && item.format === 'raw')) errors.push(`template and ${k} are mutually exclusive (placeholders reach into the secret's JSON themselves)`);
    }
  }
  if (isPathReference(item.ref)) {
    if (item.explode) errors.push('explode does not apply to a whole path (ref ending in "/*"); each secret is one file');
    if (item.versionStage !== undefined || item.versionId !== undefined) errors.push('versionStage and versionId do not apply to a whole path (ref ending in "/*")');
  }
  return errors;
}

function parseItem(raw: unknown, index: number, errors: string[]): SecretItem | undefined {
  const where = `items[${index}]`;
  if (!isObject(raw)) {
    errors.push(`${where}: must be an object`);
    return undefined;
  }
  const before = errors.length;
  for (const k of Object.keys(raw)) if (!ITEM_KEYS.has(k)) errors.push(`${where}: unknown field "${k}"`);
  const ref = optionalString(raw, 'ref', where, errors);
  if (ref === undefined) errors.push(`${where}: ref is required`);
  else {
    const parsed = isPathReference(ref) ? parsePathReference(ref) : parseReference(ref);
    if ('error' in parsed) errors.push(`${where}: ref ${parsed.error}`);
  }
  const item: SecretItem = { ref: ref ?? '' };
  const file = optionalString(raw, 'file', where, errors);
  if (file !== undefined) {
    if (!isSafeRelativePath(file)) errors.push(`${where}: file "${file}" must be a relative path inside the mount`);
    item.file = file;
  }
  for (const k of ['key', 'template', 'prefix', 'versionStage', 'versionId'] as const) {
    const v = optionalString(raw, k, where, errors);
    if (v !== undefined) item[k] = v;
  }
  if (raw.explode !== undefined) {
    if (typeof raw.explode !== 'boolean') errors.push(`${where}: explode must be a boolean`);
    else if (raw.explode) item.explode = true;
  }
  const mode = modeField(raw.mode, where, errors);
  if (mode !== undefined) item.mode = mode;
  if (raw.format !== undefined) {
    if (!FORMATS.includes(raw.format as Format)) errors.push(`${where}: format must be one of ${FORMATS.join(', ')}`);
    else item.format = raw.format as Format;
  }
  if (item.versionStage !== undefined && item.versionId !== undefined) {
    errors.push(`${where}: versionStage and versionId are mutually exclusive`);
  }
  if (item.explode && item.key !== undefined) errors.push(`${where}: explode and key are mutually exclusive`);
  errors.push(...itemRules(item).map((e) => `${where}: ${e}`));
  if (!item.explode && item.file === undefined) errors.push(`${where}: file is required unless explode is set`);
  if (item.prefix !== undefined && !item.explode) errors.push(`${where}: prefix only applies with explode`);
  if (item.prefix !== undefined && !FILE_SEGMENT.test(item.prefix)) {
    errors.push(`${where}: prefix "${item.prefix}" may hold only letters, digits, ".", "_" and "-"`);
  }
  return errors.length === before ? item : undefined;
}

export function parseSpec(text: string): SpecResult {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    return { errors: [`${SPEC_ENV} is not valid JSON: ${(e as Error).message}`] };
  }
  if (!isObject(raw)) return { errors: [`${SPEC_ENV} must be a JSON object`] };
  const errors: string[] = [];
  for (const k of Object.keys(raw)) if (!SPEC_KEYS.has(k)) errors.push(`unknown field "${k}"`);
  if (raw.version !== SPEC_VERSION) errors.push(`version must be ${SPEC_VERSION} (got ${JSON.stringify(raw.version)})`);
  const dir = raw.dir;
  if (typeof dir !== 'string' || !dir.startsWith('/')) errors.push('dir must be an absolute path');
  const region = optionalString(raw, 'region', 'spec', errors);
  if (region !== undefined && !/^[a-z]{2}(-[a-z]+)+-\d+$/.test(region)) errors.push(`region "${region}" is not valid`);
  const failoverRegion = optionalString(raw, 'failoverRegion', 'spec', errors);
  if (failoverRegion !== undefined && !/^[a-z]{2}(-[a-z]+)+-\d+$/.test(failoverRegion)) errors.push(`failoverRegion "${failoverRegion}" is not valid`);
  else if (failoverRegion !== undefined && failoverRegion === region) errors.push(`failoverRegion "${failoverRegion}" must differ from region`);
  if (failoverRegion !== undefined && Array.isArray(raw.items) && raw.items.some((i) => isObject(i) && typeof i.ref === 'string' && isPathReference(i.ref))) {
    errors.push('failoverRegion does not apply to whole-path references (ref ending in "/*")');
  }
  const roleArn = optionalString(raw, 'roleArn', 'spec', errors);
  if (roleArn !== undefined && !isValidRoleArn(roleArn)) errors.push(`roleArn "${roleArn}" is not an IAM role ARN`);
  const mode = modeField(raw.mode, 'spec', errors) ?? DEFAULT_MODE;
  const items: SecretItem[] = [];
  if (!Array.isArray(raw.items) || raw.items.length === 0) errors.push('items must be a non-empty list');
  else raw.items.forEach((it, i) => {
    const item = parseItem(it, i, errors);
    if (item) items.push(item);
  });
  let timeouts: Timeouts | undefined;
  if (raw.timeouts !== undefined) {
    if (!isObject(raw.timeouts)) errors.push('timeouts must be an object');
    else {
      timeouts = {};
      for (const k of ['callSeconds', 'deadlineSeconds', 'maxAttempts'] as const) {
        const v = raw.timeouts[k];
        if (v === undefined) continue;
        const max = TIMEOUT_LIMITS[k];
        if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) errors.push(`timeouts.${k} must be a positive number`);
        else if (k === 'maxAttempts' && !Number.isInteger(v)) errors.push(`timeouts.${k} must be a whole number`);
        else if (v > max) errors.push(`timeouts.${k} must be at most ${max} (got ${v})`);
        else timeouts[k] = v;
      }
    }
  }
  let refresh: Refresh | undefined;
  if (raw.refresh !== undefined) {
    const interval = isObject(raw.refresh) ? raw.refresh.intervalSeconds : undefined;
    const signal = isObject(raw.refresh) ? raw.refresh.signal : undefined;
    if (!isObject(raw.refresh) || Object.keys(raw.refresh).some((k) => k !== 'intervalSeconds' && k !== 'signal')) {
      errors.push('refresh must be an object with intervalSeconds and signal only');
    } else if (typeof interval !== 'number' || !Number.isInteger(interval) || interval < MIN_REFRESH_SECONDS || interval > MAX_REFRESH_SECONDS) {
      errors.push(`refresh.intervalSeconds must be a whole number from ${MIN_REFRESH_SECONDS} to ${MAX_REFRESH_SECONDS}`);
    } else if (
      signal !== undefined &&
      (!isObject(signal) ||
        Object.keys(signal).some((k) => k !== 'container' && k !== 'signal') ||
        typeof signal.container !== 'string' ||
        signal.container === '' ||
        !REFRESH_SIGNALS.includes(signal.signal as RefreshSignalName))
    ) {
      errors.push(`refresh.signal must be an object with container (a name) and signal (one of ${REFRESH_SIGNALS.join(', ')})`);
    } else {
      refresh = { intervalSeconds: interval };
      if (isObject(signal)) refresh.signal = { container: signal.container as string, signal: signal.signal as RefreshSignalName };
    }
  }
  if (errors.length > 0) return { errors };
  const spec: FetchSpec = { version: SPEC_VERSION, dir: dir as string, mode, items };
  if (region !== undefined) spec.region = region;
  if (roleArn !== undefined) spec.roleArn = roleArn;
  if (failoverRegion !== undefined) spec.failoverRegion = failoverRegion;
  if (timeouts !== undefined) spec.timeouts = timeouts;
  if (refresh !== undefined) spec.refresh = refresh;
  return { spec };
}
