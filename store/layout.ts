// The store layout of write-through: one Secrets Manager secret per Kubernetes Secret, named
// `<prefix>/<cluster>/<namespace>/<name>`, its value a JSON object of the Secret's keys, tagged so
// that only secrets of ours are ever overwritten and so that readers can be granted access by tag.
// Pure: names, tags, the value's encoding and the content token; store/write.ts makes the calls.
// Shared by `secrets push` (the CLI), the in-cluster writer and the pod webhook (`fromSecret`).

import { createHmac, randomBytes } from 'node:crypto';

export const DEFAULT_STORE_PREFIX = 'k8s';
/** Tag keys and the one value of ours. */
export const MANAGED_BY_TAG = 'managed-by';
export const MANAGED_BY = 'aws-secret-injector';
export const CLUSTER_TAG = 'kubernetes-cluster';
export const NAMESPACE_TAG = 'kubernetes-namespace';
export const NAME_TAG = 'kubernetes-name';
/**
 * The key of the content token (see contentToken): random per secret, kept on the secret itself,
 * so a version id names its content only to those who may describe the secret. Without it a
 * version id (in Git, in etcd) would be a plain hash of the value, open to guessing.
 */
export const TOKEN_KEY_TAG = 'aws-secret-injector-token-key';
/** Annotations of a reference-only Secret (the CLI prints them; the writer sets them). */
export const STORED_IN_ANNOTATION = 'secrets.k8s.aws/stored-in';
export const VERSION_ID_ANNOTATION = 'secrets.k8s.aws/version-id';
/** The label that opts a Secret into the in-cluster writer. */
export const WRITE_THROUGH_LABEL = 'secrets.k8s.aws/write-through';
/** Secrets Manager's bound on a secret value (SecretString), in bytes. */
export const MAX_VALUE_BYTES = 65_536;
/** Secrets Manager's bound on a secret's name. */
export const MAX_NAME_LENGTH = 512;

export type WriteCode =
  | 'WRITE_INVALID_SECRET' // the Secret cannot be stored: a value not UTF-8, over 64 KiB, a name the store refuses
  | 'WRITE_INVALID_SETTINGS' // cluster or prefix not set or not valid
  | 'WRITE_NOT_OWNED' // a secret of that name exists without our tags: never overwritten or deleted
  | 'WRITE_REFUSED' // the writer does not take this Secret (type, generateName, client-side apply ...)
  | 'WRITE_THROTTLED' // Secrets Manager kept throttling past the deadline
  | 'WRITE_AWS'; // Secrets Manager (or KMS, or credentials) refused the call

export interface WriteProblem {
  code: WriteCode;
  /** What the problem is about: a field, the store name, the AWS operation. */
  subject: string;
  message: string;
}

export const writeProblem = (code: WriteCode, subject: string, message: string): WriteProblem => ({ code, subject, message });

export interface StoreSettings {
  /** Identifies the cluster in names and tags; two clusters in one account need two names. */
  cluster: string;
  prefix: string;
  /** Optional customer-managed KMS key for new secrets. */
  kmsKeyId?: string;
}

export interface StoreTarget {
  name: string;
  /** Our tags (TOKEN_KEY_TAG is added when the secret is created). */
  tags: Array<{ Key: string; Value: string }>;
  kmsKeyId?: string;
}

// EKS cluster names: 1-100 of letters, digits, "-" and "_", starting with a letter or digit.
const CLUSTER = /^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/;
// Secrets Manager name characters, in `/`-separated segments.
const PREFIX_RE = /^[A-Za-z0-9_+=.@-]+(\/[A-Za-z0-9_+=.@-]+)*$/;
const NAMESPACE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** Kubernetes Secret keys (and file names of the fetcher's explode). */
export const SECRET_KEY = /^[-._a-zA-Z0-9]+$/;

export function settingsProblems(settings: { cluster?: string; prefix?: string }): WriteProblem[] {
  const problems: WriteProblem[] = [];
  if (settings.cluster === undefined || settings.cluster === '') {
    problems.push(writeProblem('WRITE_INVALID_SETTINGS', 'cluster', 'is required: the name that keeps this cluster\'s secrets apart from other clusters\' in the account'));
  } else if (!CLUSTER.test(settings.cluster)) {
    problems.push(writeProblem('WRITE_INVALID_SETTINGS', 'cluster', `${JSON.stringify(settings.cluster.slice(0, 100))} is not a cluster name (1-100 letters, digits, "-", "_", starting with a letter or digit)`));
  }
  if (settings.prefix !== undefined && (!PREFIX_RE.test(settings.prefix) || settings.prefix.length > 128)) {
    problems.push(writeProblem('WRITE_INVALID_SETTINGS', 'prefix', `${JSON.stringify(settings.prefix.slice(0, 128))} is not a name prefix (segments of letters, digits and _+=.@- separated by "/", at most 128 characters)`));
  }
  return problems;
}

/** `<prefix>/<cluster>/<namespace>/<name>`, or why the store would refuse it. */
export function storeName(settings: Pick<StoreSettings, 'cluster' | 'prefix'>, namespace: string, name: string): { name: string } | { problem: WriteProblem } {
  if (!NAMESPACE.test(namespace) || namespace.length > 63) {
    return { problem: writeProblem('WRITE_INVALID_SECRET', 'metadata.namespace', `${JSON.stringify(namespace.slice(0, 63))} is not a namespace name`) };
  }
  if (!NAME.test(name) || name.length > 253) {
    return { problem: writeProblem('WRITE_INVALID_SECRET', 'metadata.name', `${JSON.stringify(name.slice(0, 253))} is not a Secret name (a DNS subdomain)`) };
  }
  const full = `${settings.prefix}/${settings.cluster}/${namespace}/${name}`;
  if (full.length > MAX_NAME_LENGTH) {
    return { problem: writeProblem('WRITE_INVALID_SECRET', 'metadata.name', `makes the store name ${full.length} characters long; Secrets Manager allows ${MAX_NAME_LENGTH}`) };
  }
  return { name: full };
}

export function storeTags(cluster: string, namespace: string, name: string): Array<{ Key: string; Value: string }> {
  return [
    { Key: MANAGED_BY_TAG, Value: MANAGED_BY },
    { Key: CLUSTER_TAG, Value: cluster },
    { Key: NAMESPACE_TAG, Value: namespace },
    // Tag values hold 256 characters; a longer Secret name is still in the secret's name.
    { Key: NAME_TAG, Value: name.slice(0, 256) },
  ];
}

/** Why existing tags are not ours for this target, if they are not. */
export function ownershipProblem(existing: ReadonlyArray<{ Key?: string; Value?: string }> | undefined, target: StoreTarget): string | undefined {
  const tags = new Map((existing ?? []).map((t) => [t.Key, t.Value]));
  if (tags.get(MANAGED_BY_TAG) !== MANAGED_BY) return `it exists without the tag ${MANAGED_BY_TAG}=${MANAGED_BY}, so it is not ours to overwrite or delete`;
  for (const t of target.tags) {
    if (t.Key === MANAGED_BY_TAG) continue;
    const have = tags.get(t.Key);
    if (have !== t.Value) return `its tag ${t.Key} is ${have === undefined ? 'missing' : JSON.stringify(have)}, not ${JSON.stringify(t.Value)}: it belongs to another Secret or cluster`;
  }
  return undefined;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

export interface SecretContent {
  /** The JSON object stored as SecretString, keys sorted. */
  json: string;
  keys: string[];
}

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * A Secret's `data` (base64) and `stringData` (text; it wins over `data` for the same key, as in
 * the apiserver) as the stored JSON object, or every reason it cannot be stored. Values must be
 * UTF-8 text: a JSON string cannot carry other bytes, and a value the fetcher turned into other
 * bytes than the Secret held would be a silent corruption. Binary values are refused by name.
 */
export function encodeContent(secret: { data?: unknown; stringData?: unknown }): { content: SecretContent } | { problems: WriteProblem[] } {
  const problems: WriteProblem[] = [];
  const values = new Map<string, string>();
  for (const field of ['data', 'stringData'] as const) {
    const raw = secret[field];
    if (raw === undefined || raw === null) continue;
    if (!isObject(raw)) {
      problems.push(writeProblem('WRITE_INVALID_SECRET', field, 'must map keys to values'));
      continue;
    }
    for (const [k, v] of Object.entries(raw)) {
      const where = `${field}.${k}`;
      if (!SECRET_KEY.test(k) || k.length > 253) {
        problems.push(writeProblem('WRITE_INVALID_SECRET', `${field}.${k.slice(0, 40)}`, 'is not a Secret key (letters, digits, "-", "_", ".")'));
        continue;
      }
      if (typeof v !== 'string') {
        problems.push(writeProblem('WRITE_INVALID_SECRET', where, 'must be a string'));
        continue;
      }
      if (field === 'stringData') {
        values.set(k, v);
        continue;
      }
      const compact = v.replace(/\s+/g, '');
      if (!BASE64.test(compact) || compact.length % 4 !== 0) {
        problems.push(writeProblem('WRITE_INVALID_SECRET', where, 'is not base64 (data holds base64; put text under stringData)'));
        continue;
      }
      try {
        values.set(k, utf8.decode(Buffer.from(compact, 'base64')));
      } catch {
        problems.push(writeProblem('WRITE_INVALID_SECRET', where, 'is not UTF-8 text; Secrets Manager values are stored as JSON text, so binary values are refused: store them base64-encoded under another key, and decode in the app'));
      }
    }
  }
  if (problems.length > 0) return { problems };
  if (values.size === 0) return { problems: [writeProblem('WRITE_INVALID_SECRET', 'data', 'holds no key: there is nothing to store')] };
  const keys = [...values.keys()].sort();
  const json = JSON.stringify(Object.fromEntries(keys.map((k) => [k, values.get(k)!])));
  const bytes = Buffer.byteLength(json);
  if (bytes > MAX_VALUE_BYTES) {
    return {
      problems: [
        writeProblem('WRITE_INVALID_SECRET', 'data', `${keys.length} keys make a value of ${bytes} bytes as JSON; Secrets Manager holds at most ${MAX_VALUE_BYTES} (64 KiB) per secret: split the Secret`),
      ],
    };
  }
  return { content: { json, keys } };
}

export function newTokenKey(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * The ClientRequestToken (and so the version id) of a content: an HMAC, under the secret's own
 * token key, of the store name, the JSON and the version it replaces ('' for the first). The same
 * content over the same version is the same token, so a retried or repeated write makes no new
 * version; going back to an earlier content (A, B, A) is a new version, current like any write.
 */
export function contentToken(tokenKey: string, name: string, json: string, replaces = ''): string {
  const h = createHmac('sha256', tokenKey).update(name).update('\0').update(replaces).update('\0').update(json).digest();
  h[6] = (h[6]! & 0x0f) | 0x40;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}
