// The annotation registry: every `secrets.k8s.aws/*` key the webhook understands, declared once
// with its parser, default and one-line documentation. The mutation, the inject preview, the
// admission warnings and the docs/annotations.md table (renderAnnotationTable) all come from here.
//
// Names: no registered name is a prefix of another, so a key never matches two entries. The
// short form is a family, `secret.<file>`, matched by its stem `secret.` (dot included): neither
// `secret-arn`, `secret-filename` nor `secrets` starts with `secret.`, and the stem starts none
// of them, so `secrets.k8s.aws/secrets` is always the full form and `secrets.k8s.aws/secret.x`
// always the short form. A test checks the rule over the whole registry.

import YAML, { isScalar, visit } from 'yaml';
import {
  DATA_LINK,
  DEFAULT_MODE,
  FORMATS,
  isReservedPath,
  MARKER_FILE,
  RESERVED_PREFIX,
  DEFAULT_REFRESH_SIGNAL,
  MAX_PATH_SECRETS,
  MAX_REFRESH_SECONDS,
  REFRESH_SIGNALS,
  MIN_REFRESH_SECONDS,
  formatMode,
  isSafeRelativePath,
  isValidMode,
  isValidRoleArn,
  itemRules,
  parseMode,
  type Format,
  type RefreshSignal,
  type RefreshSignalName,
  type SecretItem,
} from '../fetcher/spec.js';
import { isPathReference, isValidRegion, parsePathReference, parseReference, type PathReference, type Reference } from '../fetcher/reference.js';
import { storeName } from '../store/layout.js';
import { repeatedKey } from './yaml-keys.js';
import { firstOf, MAX_LISTED_PROBLEMS, problem, quote, type Problem } from './problems.js';

export const PREFIX = 'secrets.k8s.aws/';
export const STATUS_ANNOTATION = `${PREFIX}status`;
export const STATUS_INJECTED = 'injected';
/** The file the seed's `secret-arn` writes to when `secret-filename` is not set. */
export const DEFAULT_SEED_FILENAME = 'secret';
/**
 * The apiserver refuses objects whose annotations (names and values, in bytes) total more. It
 * checks only after the mutating webhooks, so a review can carry up to its 3 MiB body limit:
 * nothing is parsed or compared before this bound is checked.
 */
export const MAX_ANNOTATIONS_BYTES = 256 * 1024;
/** The apiserver's limit on the name part of an annotation key (after the `/`). */
export const MAX_ANNOTATION_NAME = 63;

export type Annotations = Readonly<Record<string, string>>;

type Parsed<T> = { value: T } | { error: string };

export interface AnnotationDef<T = unknown> {
  /** Key without the prefix; a family is written `stem<file>`, e.g. `secret.<file>`. */
  name: string;
  /** Set for a family: the literal start every key of the family shares. */
  stem?: string;
  /** Accepted values, for the table. */
  values: string;
  /** The default, for the table (`—` when there is none). */
  default: string;
  /** One line of user documentation. */
  doc: string;
  /** Set by the webhook itself; users do not write it. */
  setByWebhook?: boolean;
  parse(value: string, key: string): Parsed<T>;
}

// ---------------------------------------------------------------------------------------------
// Value parsers

const FILE_NAME = /^[A-Za-z0-9._-]+$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const MOUNT_PATH = /^(\/[A-Za-z0-9._-]+)+$/;

/**
 * Why the secrets volume cannot be mounted at `path` in the app's containers, if it cannot: the
 * container would not start. The runtime owns /proc, /sys and /dev (a mount at or under /proc or
 * /sys is refused), and the kubelet puts files of its own at /etc/hosts, /etc/hostname,
 * /etc/resolv.conf and /dev/termination-log, where a directory cannot stand. The fetcher mounts
 * the volume at a path of its own (FETCHER_DIR), so no path here can hide its program or its
 * TLS roots.
 */
export function reservedMountPath(path: string): string | undefined {
  const p = path.replace(/\/+$/, '');
  if (p === '/dev' || ['/proc', '/sys'].some((r) => p === r || p.startsWith(`${r}/`))) return `${p} belongs to the container runtime`;
  if (['/etc/hosts', '/etc/hostname', '/etc/resolv.conf', '/dev/termination-log'].some((f) => p === f || p.startsWith(`${f}/`))) {
    return `${p} is a file the kubelet mounts into every container`;
  }
  return undefined;
}

function plainFileName(value: string): string | undefined {
  if (!FILE_NAME.test(value) || value.includes('..') || value === '.') {
    return `${quote(value)} is not a plain file name (letters, digits, "-", "_", "."; never "..")`;
  }
  if (value === MARKER_FILE) return `${quote(value)} is reserved: the fetcher writes it last to mark a complete set`;
  return undefined;
}

function reference(value: string): Parsed<string> {
  const parsed = parseReference(value);
  return 'error' in parsed ? { error: `reference ${parsed.error}` } : { value: parsed.reference.id };
}

function modeString(value: string): Parsed<number> {
  const mode = parseMode(value.trim());
  if (mode === undefined || !isValidMode(mode)) {
    return { error: `${quote(value)} is not a file mode: write it in octal such as "0440" (owner-readable, no execute bits)` };
  }
  return { value: mode };
}

/** Go-style durations as Kubernetes users write them: `30s`, `5m`, `1h30m`. */
export function parseDuration(value: string): number | undefined {
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(value.trim());
  if (!m || value.trim() === '') return undefined;
  const [, h = '0', min = '0', s = '0'] = m;
  return Number(h) * 3600 + Number(min) * 60 + Number(s);
}

// ---------------------------------------------------------------------------------------------
// The registry

export const SIDECAR_INJECTOR_WEBHOOK: AnnotationDef<'enabled' | 'disabled'> = {
  name: 'sidecarInjectorWebhook',
  values: '`enabled` \\| `disabled`',
  default: '—',
  doc: '`disabled` opts the pod out whatever else it carries; `enabled` (the original AWS sample\'s switch) is optional: any secret annotation asks for injection. `true`/`false`, `yes`/`no`, `on`/`off` are read the same way.',
  parse: (v) => {
    // Sidecar injectors of the sample's generation read these spellings too; accept them so
    // migrating manifests keep working.
    const word = v.trim().toLowerCase();
    if (['enabled', 'true', 'yes', 'on', 'y'].includes(word)) return { value: 'enabled' };
    if (['disabled', 'false', 'no', 'off', 'n'].includes(word)) return { value: 'disabled' };
    return { error: `${quote(v)} must be "enabled" or "disabled"` };
  },
};

export const SECRET_ARN: AnnotationDef<string> = {
  name: 'secret-arn',
  values: 'reference',
  default: '—',
  doc: 'One secret written whole to `<mount-path>/<secret-filename>` (the original AWS sample\'s form).',
  parse: reference,
};

export const SECRET_FILENAME: AnnotationDef<string> = {
  name: 'secret-filename',
  values: 'file name',
  default: '`secret`',
  doc: 'File name for `secret-arn`.',
  parse: (v) => {
    const err = plainFileName(v);
    return err ? { error: err } : { value: v };
  },
};

export const SECRET_SHORT: AnnotationDef<string> = {
  name: 'secret.<file>',
  stem: 'secret.',
  values: 'reference',
  default: '—',
  doc: 'One secret written whole to `<mount-path>/<file>`; `<file>` is a plain file name (letters, digits, `-`, `_`, `.`). Use one annotation per secret.',
  parse: reference,
};

export const SECRETS: AnnotationDef<SecretItem[]> = {
  name: 'secrets',
  values: 'YAML or JSON list',
  default: '—',
  doc: `Full form, one entry per secret: \`ref\` (ending in \`/*\`, a whole path of at most ${MAX_PATH_SECRETS} secrets, one file each under \`file\`) or \`fromSecret\`, \`file\`, \`key\` (a top-level key, or a JSON Pointer such as \`/db/host\`), \`template\` (\`{{ path }}\` placeholders), \`explode\`, \`prefix\`, \`versionStage\` \\| \`versionId\`, \`mode\`, \`format\` (\`raw\` \\| \`json\` \\| \`env\`). \`fromSecret: <name>\` reads a Kubernetes Secret of the pod's namespace kept in Secrets Manager (docs/write-through.md): one file per key under the directory \`file\` (default: the Secret's name).`,
  parse: (v) => parseSecretsList(v),
};

export const MOUNT_PATH_DEF: AnnotationDef<string> = {
  name: 'mount-path',
  values: 'absolute path',
  default: '`/tmp` (webhook setting `DEFAULT_MOUNT_PATH`)',
  doc: 'Where the memory-backed secrets volume is mounted in the app containers (the fetcher mounts it at a path of its own).',
  parse: (v) => {
    if (!MOUNT_PATH.test(v) || v.split('/').some((s) => s === '.' || s === '..')) {
      return { error: `${quote(v)} must be an absolute path such as /var/run/app-secrets (no "..", no trailing "/", not "/")` };
    }
    const reserved = reservedMountPath(v);
    return reserved === undefined ? { value: v } : { error: `${reserved}; choose another path such as /var/run/app-secrets` };
  },
};

export const CONTAINERS: AnnotationDef<string[]> = {
  name: 'containers',
  values: 'comma-separated container names',
  default: 'every app container',
  doc: 'The containers that get the secrets volume; init containers named here get it too.',
  parse: (v) => {
    const names = v.split(',').map((s) => s.trim());
    const bad = names.filter((n) => !DNS_LABEL.test(n) || n.length > 63);
    if (names.length === 0 || bad.length > 0) {
      return { error: `${quote(v)} must be a comma-separated list of container names; not a container name: ${bad.map((b) => quote(b)).join(', ')}` };
    }
    const seen = new Set<string>();
    const dup = names.find((n) => seen.size === seen.add(n).size);
    if (dup !== undefined) return { error: `names container ${quote(dup)} twice` };
    return { value: names };
  },
};

export const ROLE_ARN: AnnotationDef<string> = {
  name: 'role-arn',
  values: 'IAM role ARN',
  default: '—',
  doc: "A role the fetcher assumes (STS AssumeRole) from the pod's own identity before fetching.",
  parse: (v) => (isValidRoleArn(v) ? { value: v } : { error: `${quote(v)} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)` }),
};

export const REGION: AnnotationDef<string> = {
  name: 'region',
  values: 'AWS region',
  default: "the fetcher's `AWS_REGION`",
  doc: 'Region for references that carry none (secret names); ARNs always use their own region.',
  parse: (v) => (isValidRegion(v) ? { value: v } : { error: `${quote(v)} is not an AWS region such as us-east-1` }),
};

export const FAILOVER_REGION: AnnotationDef<string> = {
  name: 'failover-region',
  values: 'AWS region',
  default: '—',
  doc: "A second region every secret is also asked for, as the Secrets Store CSI provider's `failoverRegion`: a client error (HTTP 4xx) from either region fails the fetch; otherwise the secret's own region's value, else the failover region's. ARNs are asked with this region in them.",
  parse: (v) => (isValidRegion(v) ? { value: v } : { error: `${quote(v)} is not an AWS region such as us-east-2` }),
};

export const MODE: AnnotationDef<number> = {
  name: 'mode',
  values: 'octal file mode',
  default: `\`${formatMode(DEFAULT_MODE)}\``,
  doc: 'Default mode of the secret files. The default lets the app read them whatever uid, gid or fsGroup it runs with; the files belong to the fetcher\'s uid.',
  parse: modeString,
};

export const REFRESH: AnnotationDef<number> = {
  name: 'refresh',
  values: 'duration (`30s`, `5m`, `1h`)',
  default: '—',
  doc: `How often a native sidecar (\`secret-refresher\`, Kubernetes 1.29+) fetches the secrets again after start, ${MIN_REFRESH_SECONDS}s to ${MAX_REFRESH_SECONDS / 3600}h, each wait shortened by up to 20% at random; a refresh that changed a file publishes every file with \`.secrets-ready\` as one new version (one rename). Entries pinned to a \`versionId\` are not polled. Refused where the webhook setting \`NATIVE_SIDECARS\` is \`false\`.`,
  parse: (v) => {
    const s = parseDuration(v);
    if (s === undefined) return { error: `${quote(v)} is not a duration such as 30s, 5m or 1h30m` };
    if (s < MIN_REFRESH_SECONDS) return { error: `${quote(v)} is shorter than the minimum of ${MIN_REFRESH_SECONDS}s` };
    if (s > MAX_REFRESH_SECONDS) return { error: `${quote(v)} is longer than the maximum of ${MAX_REFRESH_SECONDS / 3600}h` };
    return { value: s };
  },
};

// Not `refresh-signal`: no registered name may be a prefix of another, and `refresh` is one.
export const SIGNAL_ON_REFRESH: AnnotationDef<RefreshSignal> = {
  name: 'signal-on-refresh',
  values: '`<container>` or `<container>:<signal>`',
  default: `\`${DEFAULT_REFRESH_SIGNAL}\``,
  doc: `With \`refresh\`: after a refresh that changed files, and only then, the refresher sends the signal (${REFRESH_SIGNALS.map((x) => `\`${x}\``).join(', ')}) to the top process of the named app container. The pod's process namespace is then shared (\`shareProcessNamespace\`), and the fetcher and the refresher run as that container's uid and gid, which the pod must state (\`runAsUser\`, \`runAsGroup\`, not root): no capability is added.`,
  parse: (v) => {
    const [name = '', sig, ...rest] = v.trim().split(':');
    if (!DNS_LABEL.test(name) || name.length > 63 || rest.length > 0) {
      return { error: `${quote(v)} must be a container name, optionally followed by ":" and a signal, such as app or app:SIGUSR1` };
    }
    const upper = (sig ?? DEFAULT_REFRESH_SIGNAL).trim().toUpperCase();
    const signal = (upper.startsWith('SIG') ? upper : `SIG${upper}`) as RefreshSignalName;
    if (!REFRESH_SIGNALS.includes(signal)) return { error: `${quote(sig)} is not a signal the refresher sends: one of ${REFRESH_SIGNALS.join(', ')}` };
    return { value: { container: name, signal } };
  },
};

export const STATUS: AnnotationDef<'injected'> = {
  name: 'status',
  values: '`injected`',
  default: '—',
  doc: 'Set by the webhook on every pod it injected; a pod carrying it is left as it is.',
  setByWebhook: true,
  parse: (v) =>
    v === STATUS_INJECTED
      ? { value: STATUS_INJECTED }
      : { error: `${quote(v)} is set by the webhook only, to "${STATUS_INJECTED}"; remove this annotation` },
};

/** Every annotation, in the order of the docs/annotations.md table. */
export const REGISTRY: readonly AnnotationDef[] = [
  SIDECAR_INJECTOR_WEBHOOK,
  SECRET_ARN,
  SECRET_FILENAME,
  SECRET_SHORT,
  SECRETS,
  MOUNT_PATH_DEF,
  CONTAINERS,
  ROLE_ARN,
  REGION,
  FAILOVER_REGION,
  MODE,
  REFRESH,
  SIGNAL_ON_REFRESH,
  STATUS,
] as AnnotationDef[];

/** The registry entry a full annotation key belongs to, if any. */
export function lookup(key: string): AnnotationDef | undefined {
  if (!key.startsWith(PREFIX)) return undefined;
  const name = key.slice(PREFIX.length);
  return REGISTRY.find((d) => (d.stem !== undefined ? name.startsWith(d.stem) : name === d.name));
}

/** The literal names the prefix rule applies to (a family by its stem). */
export function registryNames(): string[] {
  return REGISTRY.map((d) => d.stem ?? d.name);
}

// ---------------------------------------------------------------------------------------------
// The full form

const ENTRY_KEYS = ['ref', 'fromSecret', 'file', 'key', 'template', 'explode', 'prefix', 'versionStage', 'versionId', 'mode', 'format'] as const;
const SECRET_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Where `fromSecret` entries resolve: the webhook's write-through settings and the pod's namespace. */
export interface StoreContext {
  store?: { cluster: string; prefix: string };
  namespace?: string;
  /** Set when an entry used `fromSecret`. */
  used?: boolean;
}

/** The store name a `fromSecret` entry reads, or why it cannot be resolved. */
function fromSecretRef(name: string, context: StoreContext): Parsed<string> {
  if (!SECRET_NAME.test(name) || name.length > 253) return { error: `fromSecret ${quote(name)} is not a Secret name (a DNS subdomain: lower-case letters, digits, "-", ".")` };
  if (context.store === undefined) {
    return { error: 'fromSecret needs the webhook setting WRITE_THROUGH_CLUSTER (chart writeThrough.cluster), which is not set' };
  }
  if (context.namespace === undefined) return { error: 'fromSecret needs the pod\'s namespace, which the request does not carry' };
  const n = storeName(context.store, context.namespace, name);
  return 'name' in n ? { value: n.name } : { error: `fromSecret ${quote(name)}: ${n.problem.message}` };
}
const VERSION_STAGE = /^[A-Za-z0-9_+=.@-]{1,256}$/;
const VERSION_ID = /^[A-Za-z0-9-]{32,64}$/;

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The last path segment of a reference's name, when it can serve as a file name. */
function defaultFileFor(ref: Reference | PathReference): string | undefined {
  const name = 'name' in ref ? ref.name : ref.service === 'ssm' ? ref.path : ref.prefix;
  const last = name.split('/').filter((s) => s !== '').pop();
  return last !== undefined && plainFileName(last) === undefined ? last : undefined;
}

function parseEntry(raw: unknown, n: number, errors: string[], context: StoreContext): SecretItem | undefined {
  const where = `entry ${n}`;
  if (!isObject(raw)) {
    errors.push(`${where} must be a mapping with at least "ref"`);
    return undefined;
  }
  const before = errors.length;
  for (const k of Object.keys(raw)) {
    if (!(ENTRY_KEYS as readonly string[]).includes(k)) {
      // Only the first problems are shown: a suggestion past them would be computed for nothing.
      const close = errors.length < MAX_LISTED_PROBLEMS ? suggest(k, ENTRY_KEYS) : undefined;
      errors.push(`${where}: unknown field ${quote(k)}${close ? ` (did you mean "${close}"?)` : ''}`);
    }
  }
  const str = (k: string): string | undefined => {
    const v = raw[k];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string' || v === '') {
      errors.push(`${where}: ${k} must be a non-empty string`);
      return undefined;
    }
    return v;
  };
  // fromSecret: the store name of a Secret of the pod's namespace; by default every key becomes a
  // file in the directory `file` (the Secret's name), as a Secret volume would give. With `key`,
  // one file (named after the key); with format env, one file of every key.
  const fromSecret = str('fromSecret');
  let fromSecretName: string | undefined;
  if (fromSecret !== undefined) {
    if (raw.ref !== undefined && raw.ref !== null) errors.push(`${where}: ref and fromSecret are mutually exclusive`);
    const resolved = fromSecretRef(fromSecret, context);
    if ('error' in resolved) errors.push(`${where}: ${resolved.error}`);
    else {
      fromSecretName = resolved.value;
      context.used = true;
    }
    // The entry is the parser's own copy of the annotation's text: the defaults are filled in place.
    if (raw.explode === undefined || raw.explode === null) raw.explode = raw.key === undefined && raw.format !== 'env';
    if (raw.file === undefined || raw.file === null) raw.file = raw.explode === true || typeof raw.key !== 'string' ? fromSecret : raw.key;
  }
  const refText = fromSecret !== undefined ? fromSecretName : str('ref');
  let ref: Reference | undefined;
  let path: PathReference | undefined;
  if (refText === undefined) {
    if (fromSecret === undefined && (raw.ref === undefined || raw.ref === null)) errors.push(`${where}: ref is required`);
  } else if (isPathReference(refText)) {
    const parsed = parsePathReference(refText);
    if ('error' in parsed) errors.push(`${where}: whole path ${parsed.error}`);
    else path = parsed.path;
  } else {
    const parsed = parseReference(refText);
    if ('error' in parsed) errors.push(`${where}: reference ${parsed.error}`);
    else ref = parsed.reference;
  }
  const item: SecretItem = { ref: ref?.id ?? path?.id ?? '' };

  let explode = false;
  if (raw.explode !== undefined && raw.explode !== null) {
    if (typeof raw.explode !== 'boolean') errors.push(`${where}: explode must be true or false`);
    else explode = raw.explode;
  }
  const file = str('file');
  if (file !== undefined) {
    if (!isSafeRelativePath(file) || file.split('/').includes(MARKER_FILE)) {
      errors.push(`${where}: file ${quote(file)} must be a relative path inside the mount (segments of letters, digits, ".", "_", "-"; no "." or "..")`);
    } else if (isReservedPath(file)) {
      errors.push(`${where}: file ${quote(file)} is reserved: names starting with "${RESERVED_PREFIX}" are the secrets volume's own (its versions and the ${DATA_LINK} link)`);
    } else item.file = file;
  } else if (!explode && (ref ?? path) !== undefined) {
    const dflt = defaultFileFor((ref ?? path)!);
    if (dflt === undefined) errors.push(`${where}: file is required (the secret's name gives no usable file name)`);
    else item.file = dflt;
  }
  if (explode) item.explode = true;

  const key = str('key');
  if (key !== undefined) item.key = key;
  const template = str('template');
  if (template !== undefined) item.template = template;
  const prefix = str('prefix');
  if (prefix !== undefined) {
    if (!explode) errors.push(`${where}: prefix only applies with explode: true`);
    else if (!FILE_NAME.test(prefix)) errors.push(`${where}: prefix ${quote(prefix)} may hold only letters, digits, ".", "_" and "-"`);
    else item.prefix = prefix;
  }
  if (explode && key !== undefined) errors.push(`${where}: key and explode are mutually exclusive`);

  const stage = str('versionStage');
  const id = str('versionId');
  if (stage !== undefined && id !== undefined) errors.push(`${where}: versionStage and versionId are mutually exclusive`);
  if (stage !== undefined) {
    if (!VERSION_STAGE.test(stage)) errors.push(`${where}: versionStage ${quote(stage)} is not a version stage such as AWSCURRENT`);
    else item.versionStage = stage;
  }
  if (id !== undefined) {
    if (!VERSION_ID.test(id)) errors.push(`${where}: versionId ${quote(id)} is not a version id (32-64 letters, digits, "-")`);
    else item.versionId = id;
  }
  if ((stage !== undefined || id !== undefined) && ref?.service === 'ssm') {
    errors.push(`${where}: versionStage/versionId apply to Secrets Manager secrets, not SSM parameters`);
  }

  if (raw.mode !== undefined && raw.mode !== null) {
    // YAML 1.2 reads an unquoted 0440 as the decimal number 440: take its digits as octal.
    const text = typeof raw.mode === 'number' && Number.isInteger(raw.mode) ? String(raw.mode) : raw.mode;
    const m = typeof text === 'string' ? modeString(text) : { error: `${quote(raw.mode)} is not a file mode` };
    if ('error' in m) errors.push(`${where}: mode ${m.error}`);
    else item.mode = m.value;
  }
  if (raw.format !== undefined && raw.format !== null) {
    if (!FORMATS.includes(raw.format as Format)) errors.push(`${where}: format must be one of ${FORMATS.join(', ')}`);
    else item.format = raw.format as Format;
  }
  if (explode && item.format === 'env') errors.push(`${where}: format env writes one file; it does not apply with explode`);
  errors.push(...itemRules(item).map((e) => `${where}: ${e}`));
  return errors.length === before ? item : undefined;
}

function parseSecretsList(value: string, context: StoreContext = {}): Parsed<SecretItem[]> {
  let raw: unknown;
  try {
    // JSON is YAML, so one parser reads both; aliases are capped against expansion bombs. The
    // parser's warnings (an unknown tag, ...) would go to stderr through process.emitWarning,
    // quoting the pod's text outside the review's log line: they are not wanted.
    // Repeated keys are found in one pass by repeatedKey, not by the parser's quadratic check.
    const doc = YAML.parseDocument(value, { uniqueKeys: false, prettyErrors: false, logLevel: 'error' });
    if (doc.errors.length > 0) throw doc.errors[0]!;
    const repeated = repeatedKey(doc);
    if (repeated !== undefined) return { error: `is not valid YAML or JSON: key ${quote(repeated.key)} appears twice in one mapping` };
    // A mode is read from its text: YAML turns 0o440 into 288 and 0x1F into 31, whose digits
    // would be read as another mode or shown in a message the user never wrote.
    visit(doc, {
      Pair: (_, pair) => {
        const v = pair.value;
        if (isScalar(pair.key) && pair.key.value === 'mode' && isScalar(v) && typeof v.value === 'number' && typeof v.source === 'string') {
          v.value = v.source.replace(/^0o/i, '0');
        }
      },
    });
    raw = doc.toJS({ maxAliasCount: 50 });
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0] ?? 'unreadable';
    return { error: `is not valid YAML or JSON: ${msg}` };
  }
  if (!Array.isArray(raw)) return { error: 'must be a YAML or JSON list of entries such as [{ref: <arn>, file: db}]' };
  if (raw.length === 0) return { error: 'must list at least one secret' };
  const errors: string[] = [];
  const items: SecretItem[] = [];
  raw.forEach((entry, i) => {
    const item = parseEntry(entry, i + 1, errors, context);
    if (item) items.push(item);
  });
  return errors.length > 0 ? { error: firstOf(errors).join('; ') } : { value: items };
}

// ---------------------------------------------------------------------------------------------
// Suggestions for unknown keys

/** Edit distance counting an adjacent transposition as one edit (optimal string alignment). */
function distance(a: string, b: string): number {
  // Three rows of a flat table: the distance runs for every unknown key, thousands of times on a
  // large list, and a table of arrays per call cost more than the comparison itself.
  const w = b.length + 1;
  let before = new Uint32Array(w);
  let prev = Uint32Array.from({ length: w }, (_, j) => j);
  let row = new Uint32Array(w);
  for (let i = 1; i <= a.length; i++) {
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, before[j - 2]! + 1);
      row[j] = v;
    }
    [before, prev, row] = [prev, row, before];
  }
  return prev[b.length]!;
}

/** The most edits a suggestion may be away; `distance` is only run on names this close in length. */
const MAX_SUGGESTION_EDITS = 3;

function close(a: string, b: string): boolean {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  return distance(x, y) <= Math.max(1, Math.min(MAX_SUGGESTION_EDITS, Math.floor(y.length / 4)));
}

function suggest(name: string, candidates: readonly string[]): string | undefined {
  let best: { c: string; d: number } | undefined;
  for (const c of candidates) {
    // Names further apart in length than the edits allowed cannot be close; the edit distance
    // costs the product of the lengths, so a long name is never handed to it.
    if (Math.abs(name.length - c.length) > MAX_SUGGESTION_EDITS || !close(name, c)) continue;
    const d = distance(name.toLowerCase(), c.toLowerCase());
    if (!best || d < best.d) best = { c, d };
  }
  return best?.c;
}

/** A known key close to an unknown name (without prefix), for "did you mean …". */
export function suggestKey(name: string): string | undefined {
  const plain = suggest(
    name,
    REGISTRY.filter((d) => d.stem === undefined && !d.setByWebhook).map((d) => d.name),
  );
  if (plain !== undefined) return plain;
  // The family: `secrets.db`, `secret_db`, `Secret.db` are near `secret.db`. Of the ways to
  // split the name into a near-stem and a file name, take the closest, then the longest stem.
  for (const d of REGISTRY) {
    if (d.stem === undefined) continue;
    let best: { file: string; d: number; len: number } | undefined;
    for (let i = d.stem.length - 1; i < name.length && i <= d.stem.length + 1; i++) {
      const dist = distance(name.slice(0, i).toLowerCase(), d.stem);
      const file = name.slice(i);
      if (dist > 1 || plainFileName(file) !== undefined) continue;
      if (!best || dist < best.d || (dist === best.d && i > best.len)) best = { file, d: dist, len: i };
    }
    if (best) return `${d.stem}${best.file}`;
  }
  return undefined;
}

const PREFIX_NAME = PREFIX.slice(0, -1);

// ---------------------------------------------------------------------------------------------
// Stages over annotations: should-inject, defaults, parse

export type Decision =
  | { inject: true; warnings: string[] }
  | { inject: false; outcome: 'skipped' | 'already-injected'; why: string; warnings: string[] }
  | { inject: false; outcome: 'denied'; problems: Problem[]; warnings: string[] };

const SECRET_KEYS = (annotations: Annotations): string[] =>
  Object.keys(annotations).filter((k) => {
    const d = lookup(k);
    return d === SECRET_ARN || d === SECRET_SHORT || d === SECRETS;
  });

/** Warnings about keys that look like ours but are not: unknown names and near-miss prefixes. */
export function unknownKeyWarnings(annotations: Annotations): string[] {
  const warnings: string[] = [];
  for (const key of Object.keys(annotations).sort()) {
    const slash = key.indexOf('/');
    if (key.startsWith(PREFIX)) {
      if (lookup(key) !== undefined) continue;
      const name = key.slice(PREFIX.length);
      const s = suggestKey(name);
      warnings.push(`unknown annotation ${key} is ignored${s ? `; did you mean ${PREFIX}${s}?` : ''}`);
    } else if (slash > 0) {
      const prefix = key.slice(0, slash);
      if (prefix !== PREFIX_NAME && Math.abs(prefix.length - PREFIX_NAME.length) <= 2 && distance(prefix.toLowerCase(), PREFIX_NAME) <= 2) {
        warnings.push(`annotation ${key} is ignored; did you mean the prefix ${PREFIX}?`);
      }
    }
  }
  return warnings;
}

/**
 * The cheap checks that come before any parsing or suggestion, so the worst annotations a review
 * can carry cost what a normal pod's do: the apiserver's total size (it would refuse the pod
 * after the webhooks anyway) and the length of our keys' names.
 */
export function checkBounds(annotations: Annotations): Problem[] {
  let bytes = 0;
  const problems: Problem[] = [];
  for (const key of Object.keys(annotations)) {
    bytes += Buffer.byteLength(key) + Buffer.byteLength(annotations[key]!);
    if (key.startsWith(PREFIX) && key.length - PREFIX.length > MAX_ANNOTATION_NAME && problems.length < MAX_LISTED_PROBLEMS) {
      problems.push(
        problem(
          'WEBHOOK_INVALID_ANNOTATION',
          `${key.slice(0, PREFIX.length + MAX_ANNOTATION_NAME)}…`,
          `the name after ${PREFIX} is ${key.length - PREFIX.length} characters long; the apiserver allows at most ${MAX_ANNOTATION_NAME}`,
        ),
      );
    }
  }
  if (bytes > MAX_ANNOTATIONS_BYTES) {
    // Alone: with the total over, the names' problems are beside the point.
    return [problem('WEBHOOK_INVALID_POD', 'metadata.annotations', `total ${bytes} bytes, over the apiserver's limit of ${MAX_ANNOTATIONS_BYTES}; shorten the pod's annotations`)];
  }
  return problems;
}

/**
 * Stage should-inject: does this pod ask for secrets at all? A denial here is not the end of the
 * review: the caller still parses and validates the rest, so one denial names every problem.
 */
export function shouldInject(annotations: Annotations): Decision {
  const warnings = unknownKeyWarnings(annotations);
  const problems: Problem[] = [];
  const switchKey = `${PREFIX}${SIDECAR_INJECTOR_WEBHOOK.name}`;
  const sw = annotations[switchKey];
  if (sw !== undefined) {
    const parsed = SIDECAR_INJECTOR_WEBHOOK.parse(sw, switchKey);
    if ('error' in parsed) problems.push(problem('WEBHOOK_INVALID_ANNOTATION', switchKey, parsed.error));
    else if (parsed.value === 'disabled') return { inject: false, outcome: 'skipped', why: 'opted out', warnings };
  }
  const status = annotations[STATUS_ANNOTATION];
  if (status !== undefined) {
    const parsed = STATUS.parse(status, STATUS_ANNOTATION);
    if ('error' in parsed) problems.push(problem('WEBHOOK_INVALID_ANNOTATION', STATUS_ANNOTATION, parsed.error));
    else if (problems.length === 0) return { inject: false, outcome: 'already-injected', why: 'already injected', warnings };
  }
  if (problems.length > 0) return { inject: false, outcome: 'denied', problems, warnings };
  if (SECRET_KEYS(annotations).length > 0) return { inject: true, warnings };
  if (sw !== undefined) {
    return {
      inject: false,
      outcome: 'denied',
      problems: [
        problem(
          'WEBHOOK_NO_SECRETS',
          switchKey,
          `asks for injection but the pod names no secret: add ${PREFIX}${SECRET_ARN.name}, ${PREFIX}secret.<file> or ${PREFIX}${SECRETS.name}`,
        ),
      ],
      warnings,
    };
  }
  const options = Object.keys(annotations).filter((k) => {
    const d = lookup(k);
    return d !== undefined && d !== SIDECAR_INJECTOR_WEBHOOK;
  });
  if (options.length > 0) {
    warnings.push(`${options.sort().join(', ')} ignored: the pod names no secret, so nothing is injected`);
  }
  return { inject: false, outcome: 'skipped', why: 'no secret annotations', warnings };
}

/** What a pod asks for, parsed and defaulted; the fetcher's spec is built from it. */
export interface InjectionRequest {
  mountPath: string;
  /** Containers (app or init) to mount into; undefined = every app container. */
  containers?: string[];
  roleArn?: string;
  region?: string;
  failoverRegion?: string;
  mode: number;
  refreshSeconds?: number;
  /** `signal-on-refresh`: the container and the signal. */
  refreshSignal?: RefreshSignal;
  items: SecretItem[];
}

export interface Defaults {
  mountPath: string;
  /** The webhook's write-through settings, for `fromSecret` entries. */
  store?: { cluster: string; prefix: string; region?: string };
  /** The pod's namespace (the review's), for `fromSecret` entries. */
  namespace?: string;
}

export type ParseResult =
  | { request: InjectionRequest; warnings: string[] }
  | {
      problems: Problem[];
      warnings: string[];
      /** What did parse, defaults standing in for the rest: for the validate stage, never to render. */
      partial: InjectionRequest;
      /** The annotation keys whose values were refused; validation that depends on them is skipped. */
      refused: ReadonlySet<string>;
    };

/** Stages defaults + parse: every annotation of ours, all problems collected. */
export function parseAnnotations(annotations: Annotations, defaults: Defaults): ParseResult {
  const problems: Problem[] = [];
  const warnings: string[] = [];
  const key = (d: AnnotationDef) => `${PREFIX}${d.name}`;
  function get<T>(d: AnnotationDef<T>): T | undefined {
    const raw = annotations[key(d)];
    if (raw === undefined) return undefined;
    const parsed = d.parse(raw, key(d));
    if ('error' in parsed) {
      problems.push(problem('WEBHOOK_INVALID_ANNOTATION', key(d), parsed.error));
      return undefined;
    }
    return parsed.value;
  }

  const request: InjectionRequest = {
    mountPath: get(MOUNT_PATH_DEF) ?? defaults.mountPath,
    mode: get(MODE) ?? DEFAULT_MODE,
    items: [],
  };
  const containers = get(CONTAINERS);
  if (containers !== undefined) request.containers = containers;
  const roleArn = get(ROLE_ARN);
  if (roleArn !== undefined) request.roleArn = roleArn;
  const region = get(REGION);
  if (region !== undefined) request.region = region;
  const failoverRegion = get(FAILOVER_REGION);
  if (failoverRegion !== undefined && failoverRegion === region) {
    problems.push(problem('WEBHOOK_CONFLICTING_ANNOTATIONS', key(FAILOVER_REGION), `is ${quote(failoverRegion)}, the same as ${key(REGION)}: name another region, where the secrets are replicated`));
  } else if (failoverRegion !== undefined) request.failoverRegion = failoverRegion;
  const refresh = get(REFRESH);
  if (refresh !== undefined) request.refreshSeconds = refresh;
  const refreshSignal = get(SIGNAL_ON_REFRESH);
  if (refreshSignal !== undefined && annotations[key(REFRESH)] === undefined) {
    problems.push(problem('WEBHOOK_CONFLICTING_ANNOTATIONS', key(SIGNAL_ON_REFRESH), `applies only with ${key(REFRESH)}, which is not set: the files never change without it`));
  } else if (refreshSignal !== undefined) request.refreshSignal = refreshSignal;

  // Which annotation each file came from, to name both sides of a clash; with explode, `file` is
  // the directory the keys are written into.
  const origin = new Map<string, string>();
  const dirs = new Map<string, string>();
  const add = (item: SecretItem, from: string): void => {
    // A whole path writes a directory, as explode does.
    const dir = item.explode === true || isPathReference(item.ref);
    if (item.file !== undefined && dir && !dirs.has(item.file)) dirs.set(item.file, from);
    if (item.file !== undefined && !dir) {
      const other = origin.get(item.file);
      if (other !== undefined) {
        problems.push(problem('WEBHOOK_CONFLICTING_ANNOTATIONS', from, `writes file "${item.file}", which ${other} writes too`));
        return;
      }
      origin.set(item.file, from);
    }
    request.items.push(item);
  };

  const arn = get(SECRET_ARN);
  const filename = get(SECRET_FILENAME);
  if (arn !== undefined) add({ ref: arn, file: filename ?? DEFAULT_SEED_FILENAME }, key(SECRET_ARN));
  else if (annotations[key(SECRET_FILENAME)] !== undefined && annotations[key(SECRET_ARN)] === undefined) {
    problems.push(problem('WEBHOOK_CONFLICTING_ANNOTATIONS', key(SECRET_FILENAME), `applies only with ${key(SECRET_ARN)}, which is not set`));
  }

  const stem = `${PREFIX}${SECRET_SHORT.stem}`;
  for (const k of Object.keys(annotations).filter((x) => x.startsWith(stem)).sort()) {
    const file = k.slice(stem.length);
    const fileErr = plainFileName(file);
    const parsed = SECRET_SHORT.parse(annotations[k]!, k);
    if (fileErr !== undefined) problems.push(problem('WEBHOOK_INVALID_ANNOTATION', k, `file name ${fileErr}`));
    if ('error' in parsed) problems.push(problem('WEBHOOK_INVALID_ANNOTATION', k, parsed.error));
    if (fileErr === undefined && !('error' in parsed)) add({ ref: parsed.value, file }, k);
  }

  const context: StoreContext = {};
  if (defaults.store !== undefined) context.store = defaults.store;
  if (defaults.namespace !== undefined) context.namespace = defaults.namespace;
  const listText = annotations[key(SECRETS)];
  const list = listText === undefined ? undefined : parseSecretsList(listText, context);
  if (list !== undefined && 'error' in list) problems.push(problem('WEBHOOK_INVALID_ANNOTATION', key(SECRETS), list.error));
  else list?.value.forEach((item, i) => add(item, `${key(SECRETS)} entry ${i + 1}`));
  // fromSecret entries are names, read in the region of the write-through settings.
  const storeRegion = defaults.store?.region;
  if (context.used && storeRegion !== undefined) {
    if (request.region === undefined) request.region = storeRegion;
    else if (request.region !== storeRegion) {
      problems.push(problem('WEBHOOK_CONFLICTING_ANNOTATIONS', key(REGION), `is ${quote(request.region)}, but fromSecret entries are kept in ${quote(storeRegion)} (webhook setting WRITE_THROUGH_REGION): remove ${key(REGION)} and name other regions' secrets by ARN`));
    }
  }
  if (request.failoverRegion !== undefined && list !== undefined && 'value' in list && list.value.some((i) => isPathReference(i.ref))) {
    problems.push(problem('WEBHOOK_CONFLICTING_ANNOTATIONS', key(FAILOVER_REGION), `does not apply to whole-path references (ref ending in "/*") in ${key(SECRETS)}: a path is listed in one region`));
  }

  // A file that is a directory of another (`a` and `a/b`) cannot exist. Each directory is mapped
  // to the first path below it, so the check stays linear however many entries a pod lists.
  const below = (paths: Iterable<string>, self: boolean): Map<string, string> => {
    const m = new Map<string, string>();
    for (const p of paths) {
      const segments = p.split('/');
      for (let i = self ? segments.length : segments.length - 1; i > 0; i--) {
        const d = segments.slice(0, i).join('/');
        if (!m.has(d)) m.set(d, p);
      }
    }
    return m;
  };
  const fileBelow = below(origin.keys(), false);
  const dirAtOrBelow = below(dirs.keys(), true);
  for (const f of origin.keys()) {
    const child = fileBelow.get(f);
    if (child !== undefined) {
      problems.push(problem('WEBHOOK_CONFLICTING_ANNOTATIONS', origin.get(f)!, `file "${f}" is also a directory of "${child}" (${origin.get(child)})`));
    }
    const dir = dirAtOrBelow.get(f);
    if (dir !== undefined) {
      problems.push(problem('WEBHOOK_CONFLICTING_ANNOTATIONS', origin.get(f)!, `file "${f}" is also ${dir === f ? 'the directory' : `a directory of "${dir}", the directory`} ${dirs.get(dir)} explodes into`));
    }
  }

  // By annotation name, so the same pod always gets the same message.
  problems.sort((a, b) => (a.subject < b.subject ? -1 : a.subject > b.subject ? 1 : 0));
  if (problems.length > 0) return { problems, warnings, partial: request, refused: new Set(problems.map((p) => p.subject)) };
  return { request, warnings };
}

// ---------------------------------------------------------------------------------------------
// Documentation

/** The markdown table that sits between the annotation markers in docs/annotations.md. */
export function renderAnnotationTable(): string {
  const rows = REGISTRY.map(
    (d) => `| \`${PREFIX}${d.name}\` | ${d.values} | ${d.default} | ${d.doc} |`,
  );
  return ['| Annotation | Value | Default | What it does |', '| --- | --- | --- | --- |', ...rows].join('\n');
}
