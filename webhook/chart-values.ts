// The chart's values as the webhook's environment: what the chart's Deployment template sets for
// each value, so `inject --values` configures the mutation exactly as `helm install --values` does.
// test/unit/chart.spec.ts renders the chart with the real helm and checks this table against it.

import AjvModule from 'ajv';
import YAML from 'yaml';
import schema from '../charts/aws-secret-injector/values.schema.json' with { type: 'json' };
import pkg from '../package.json' with { type: 'json' };

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Environment variable -> the value path the chart sets it from. */
export const VALUE_ENV: ReadonlyArray<readonly [env: string, path: string]> = [
  ['FETCHER_IMAGE_PULL_POLICY', 'fetcher.image.pullPolicy'],
  ['FETCHER_CPU_REQUEST', 'fetcher.resources.requests.cpu'],
  ['FETCHER_MEMORY_REQUEST', 'fetcher.resources.requests.memory'],
  ['FETCHER_CPU_LIMIT', 'fetcher.resources.limits.cpu'],
  ['FETCHER_MEMORY_LIMIT', 'fetcher.resources.limits.memory'],
  ['CPU_LIMIT_POLICY', 'cpuLimitPolicy'],
  ['FETCHER_UID', 'fetcher.uid'],
  ['FETCHER_NODE_CREDENTIALS', 'fetcher.nodeCredentials'],
  ['DEFAULT_MOUNT_PATH', 'defaultMountPath'],
  ['VOLUME_SIZE_LIMIT', 'volumeSizeLimit'],
  ['FETCH_DEADLINE_SECONDS', 'fetcher.deadlineSeconds'],
  ['REFRESHER_CPU_REQUEST', 'refresher.resources.requests.cpu'],
  ['REFRESHER_MEMORY_REQUEST', 'refresher.resources.requests.memory'],
  ['REFRESHER_CPU_LIMIT', 'refresher.resources.limits.cpu'],
  ['REFRESHER_MEMORY_LIMIT', 'refresher.resources.limits.memory'],
  ['FETCHER_HTTPS_PROXY', 'fetcher.network.httpsProxy'],
  ['FETCHER_HTTP_PROXY', 'fetcher.network.httpProxy'],
  ['FETCHER_NO_PROXY', 'fetcher.network.noProxy'],
  ['FETCHER_AWS_USE_FIPS_ENDPOINT', 'fetcher.network.useFipsEndpoint'],
  ['FETCHER_AWS_USE_DUALSTACK_ENDPOINT', 'fetcher.network.useDualstackEndpoint'],
  ['FETCHER_AWS_ENDPOINT_URL_SECRETS_MANAGER', 'fetcher.network.endpoints.secretsManager'],
  ['FETCHER_AWS_ENDPOINT_URL_SSM', 'fetcher.network.endpoints.ssm'],
  ['FETCHER_AWS_ENDPOINT_URL_STS', 'fetcher.network.endpoints.sts'],
  ['FETCHER_CA_BUNDLE_CONFIGMAP', 'fetcher.network.caBundle.configMap'],
  ['FETCHER_CA_BUNDLE_KEY', 'fetcher.network.caBundle.key'],
];

/** The fetcher image's parts, and their defaults in the chart (the tag defaults to appVersion). */
const IMAGE = { repository: 'ghcr.io/aws-secret-injector/fetcher', tag: pkg.version, digest: '' };

/** Kubernetes minor from which native sidecars are on by default (the chart's nativeSidecars: null). */
const NATIVE_SIDECARS_SINCE = [1, 29];

/**
 * A value by its path: absent, or present (null included; a null on the way, such as
 * `limits: null`, is every value below it set to nothing, as the chart's templates read it).
 */
function lookup(values: Obj, path: string): { present: false } | { present: true; value: unknown } {
  let v: unknown = values;
  for (const k of path.split('.')) {
    if (v === null) return { present: true, value: null };
    if (!isObject(v) || !Object.hasOwn(v, k)) return { present: false };
    v = v[k];
  }
  return { present: true, value: v };
}

/**
 * Helm's merge of --values files: maps merge key by key, anything else replaces. A null is kept
 * (helm then removes the chart's default, which the templates read as nothing).
 */
export function mergeValues(base: Obj, over: Obj): Obj {
  const out: Obj = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = isObject(v) && isObject(out[k]) ? mergeValues(out[k] as Obj, v) : v;
  return out;
}

/** A values file as helm reads it (YAML 1.1: `yes` is true), or why it cannot be read. */
export function parseValues(text: string, name: string): Obj | { error: string } {
  const doc = YAML.parseDocument(text, { version: '1.1' });
  if (doc.errors.length > 0) return { error: `${name}: not valid YAML: ${doc.errors[0]!.message.split('\n')[0]}` };
  const v: unknown = doc.toJS({ maxAliasCount: 100 });
  if (v === null || v === undefined) return {};
  return isObject(v) ? v : { error: `${name}: must be a mapping of values, as helm's --values takes` };
}

const text = (v: unknown): string => (v === null || v === undefined ? '' : String(v));

/**
 * The webhook's environment for the values the user set (merged as helm merges them), as the
 * chart's Deployment sets it; the values left unset keep the chart's defaults, which are the
 * webhook's own. `kubeVersion` stands in for the cluster helm would ask (nativeSidecars: null).
 */
export function envFromValues(values: Obj, kubeVersion?: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, path] of VALUE_ENV) {
    const found = lookup(values, path);
    if (!found.present) continue;
    // Empty for null (no limit, no proxy): what the chart writes, or leaves out, for it.
    env[name] = typeof found.value === 'boolean' ? String(found.value) : text(found.value);
  }
  const image = lookup(values, 'fetcher.image');
  if (image.present && isObject(image.value) && ['repository', 'tag', 'digest'].some((k) => Object.hasOwn(image.value as Obj, k))) {
    const { repository, tag, digest } = image.value;
    const name = text(repository) || IMAGE.repository;
    env.FETCHER_IMAGE = text(digest) !== '' ? `${name}@${text(digest)}` : `${name}:${text(tag) || IMAGE.tag}`;
  }
  const native = lookup(values, 'nativeSidecars');
  if (native.present && typeof native.value === 'boolean') env.NATIVE_SIDECARS = String(native.value);
  else if (kubeVersion !== undefined) {
    const [major = 0, minor = 0] = kubeVersion.replace(/^v/, '').split('.').map((x) => Number.parseInt(x, 10));
    env.NATIVE_SIDECARS = String(major > NATIVE_SIDECARS_SINCE[0]! || (major === NATIVE_SIDECARS_SINCE[0] && minor >= NATIVE_SIDECARS_SINCE[1]!));
  }
  // The CA key is set only beside a ConfigMap; without one it shapes nothing.
  if (env.FETCHER_CA_BUNDLE_CONFIGMAP === undefined || env.FETCHER_CA_BUNDLE_CONFIGMAP === '') delete env.FETCHER_CA_BUNDLE_KEY;
  return env;
}

/** The chart's schema minus `required`: helm checks the user's values merged over the chart's defaults, which hold every required value. */
function withoutRequired(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withoutRequired);
  if (!isObject(node)) return node;
  return Object.fromEntries(Object.entries(node).filter(([k]) => k !== 'required').map(([k, v]) => [k, withoutRequired(v)]));
}

/** A null removes the chart's default before helm checks the schema: the key is then absent. */
function withoutNulls(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutNulls);
  if (!isObject(v)) return v;
  return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== null).map(([k, x]) => [k, withoutNulls(x)]));
}

/** The schemas an object's keys are checked against: its own, and its anyOf's object branches. */
const objectSchemas = (node: Obj): Obj[] => [node, ...((node.anyOf as Obj[] | undefined) ?? []).filter((b) => b.type === 'object')];

/** Keys set to null that the chart requires: removing the default leaves them missing. */
function requiredNulls(values: Obj, node: Obj, path: string[]): string[] {
  const problems: string[] = [];
  for (const [k, v] of Object.entries(values)) {
    for (const s of objectSchemas(node)) {
      if (v === null && ((s.required as string[] | undefined) ?? []).includes(k)) {
        problems.push(`${[...path, k].join('.')}: is required by the chart and cannot be null`);
      }
      const child = (s.properties as Record<string, Obj> | undefined)?.[k];
      if (isObject(v) && child !== undefined) problems.push(...requiredNulls(v, child, [...path, k]));
    }
  }
  return problems;
}

let validate: ReturnType<InstanceType<typeof AjvModule.default>['compile']> | undefined;

/**
 * What `helm install` would refuse in these values (merged as helm merges --values files): each
 * problem names the value's path, as a key the chart does not have, a wrong type or a value out of
 * range. Empty when the chart's schema accepts them.
 */
export function checkValues(values: Obj): string[] {
  validate ??= new AjvModule.default({ allErrors: true, strict: false }).compile(withoutRequired(schema) as object);
  const nulls = requiredNulls(values, schema as Obj, []);
  if (validate(withoutNulls(values))) return nulls;
  const problems = (validate.errors ?? [])
    // An anyOf's own line says only that no branch matched, and its null branch that the value is
    // not null: the other branch says why.
    .filter((e) => e.keyword !== 'anyOf' && !(e.keyword === 'type' && (e.params as { type: string }).type === 'null' && e.schemaPath.includes('/anyOf/')))
    .map((e) => {
      const path = e.instancePath.split('/').slice(1).join('.') || '(top level)';
      const extra = e.keyword === 'additionalProperties' ? ` "${String((e.params as { additionalProperty: string }).additionalProperty)}"` : '';
      return `${path}: ${e.message ?? 'is not valid'}${extra}`;
    });
  return [...new Set([...nulls, ...problems])];
}
