// The webhook's configuration: one table of options, each settable by an environment variable or
// the matching flag (`PORT` = `--port`; a flag wins over the environment). Everything is validated
// at start and every problem is reported at once. The Helm chart sets the environment variables;
// docs/configuration.md is rendered from this table and checked against it by a test.

import { statSync } from 'node:fs';
import { Command, CommanderError, Option as CommanderOption } from 'commander';
import { NODE_CREDENTIALS_VALUES } from '../fetcher/identity.js';
import { NETWORK_ENV, NODE_CREDENTIALS_ENV, type NetworkEnvName } from '../fetcher/spec.js';
import { reservedMountPath } from './annotations.js';
import { CPU_LIMIT_POLICIES } from './cpu-limit.js';
import { DEFAULT_STORE_PREFIX, settingsProblems } from '../store/layout.js';
import { isValidRegion } from '../fetcher/reference.js';
import { PLAIN_HTTP_SETTING } from './validate-fetcher.js';
import { quantityValue } from './quantity.js';
import { DEFAULT_MUTATION_CONFIG, type MutationConfig } from './types.js';

export { quantityValue };

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
const PULL_POLICIES = ['Always', 'IfNotPresent', 'Never'] as const;

export interface WebhookConfig {
  host: string;
  port: number;
  /** Undefined: no monitoring port of its own. */
  monitorPort?: number;
  /** Both set, or both undefined (then a self-signed development certificate is served). */
  tlsCertFile?: string;
  tlsKeyFile?: string;
  logLevel: LogLevel;
  shutdownDelaySeconds: number;
  shutdownTimeoutSeconds: number;
  mutation: MutationConfig;
  /** The writer's settings (`aws-secret-injector write-through`); the cluster and prefix are mutation.store's. */
  writeThrough: {
    kmsKeyId?: string;
    deletionPolicy: 'Retain' | 'Delete';
    recoveryDays: number;
    deadlineSeconds: number;
    namespace?: string;
  };
}

type Parsed<T> = { value: T } | { error: string };

interface Option<T> {
  env: string;
  /** Shown in the docs/configuration.md table and `--help`; undefined means "unset". */
  default: string | undefined;
  doc: string;
  parse: (raw: string) => Parsed<T>;
}

const ok = <T>(value: T): Parsed<T> => ({ value });
const fail = <T>(error: string): Parsed<T> => ({ error });

function integer(min: number, max: number) {
  return (raw: string): Parsed<number> => {
    if (!/^\d+$/.test(raw)) return fail(`must be a whole number from ${min} to ${max}`);
    const n = Number(raw);
    return n >= min && n <= max ? ok(n) : fail(`must be a whole number from ${min} to ${max}`);
  };
}

function oneOf<T extends string>(values: readonly T[]) {
  return (raw: string): Parsed<T> =>
    (values as readonly string[]).includes(raw) ? ok(raw as T) : fail(`must be one of ${values.join(', ')}`);
}

function quantity(allowEmpty: boolean) {
  return (raw: string): Parsed<string | undefined> => {
    if (raw === '' && allowEmpty) return ok(undefined);
    const v = quantityValue(raw);
    if (v === undefined || v <= 0) {
      return fail(
        `must be a positive Kubernetes quantity such as 100m, 64Mi or 1${allowEmpty ? ' (empty: no limit)' : ''}`,
      );
    }
    return ok(raw);
  };
}

function filePath(raw: string): Parsed<string | undefined> {
  if (raw === '') return ok(undefined);
  try {
    if (!statSync(raw).isFile()) return fail(`${raw} is not a file`);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return fail(code === 'ENOENT' ? `${raw} does not exist` : `${raw} cannot be read (${code ?? 'error'})`);
  }
  return ok(raw);
}

function mountPath(raw: string): Parsed<string> {
  if (!raw.startsWith('/') || raw === '/') return fail('must be an absolute path other than /');
  if (raw.includes(':') || raw.split('/').some((s) => s === '..' || s === '.')) {
    return fail('must not contain ":" or "." / ".." segments');
  }
  if (raw.length > 1024) return fail('must be at most 1024 characters');
  const reserved = reservedMountPath(raw);
  if (reserved !== undefined) return fail(`must be another path: ${reserved}`);
  return ok(raw.replace(/\/+$/, ''));
}

// An image reference: no whitespace, no scheme; the registry validates the rest.
function image(raw: string): Parsed<string> {
  return /^[a-z0-9][\w.\-/:@]*$/i.test(raw) && !raw.includes('://') ? ok(raw) : fail('must be an image reference');
}

function host(raw: string): Parsed<string> {
  return /^[A-Za-z0-9.:\-[\]%]+$/.test(raw) ? ok(raw.replace(/^\[(.*)\]$/, '$1')) : fail('must be an IP address or host name');
}


const optional = <T>(parse: (raw: string) => Parsed<T>) => (raw: string): Parsed<T | undefined> => (raw === '' ? ok(undefined) : parse(raw));

/**
 * A URL the fetcher connects to: http or https, a host, nothing after the path. No user
 * information: the value is copied in clear into every injected pod's spec.
 */
function url(what: string, pathAllowed: boolean) {
  return (raw: string): Parsed<string> => {
    let u: URL;
    try {
      u = new URL(raw);
    } catch {
      return fail(`must be a URL such as ${what}`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return fail(`must be an ${what.startsWith('https:') ? '' : 'http:// or '}https:// URL such as ${what}`);
    if (u.username !== '' || u.password !== '') {
      return fail('must not carry a user name or password: it would be copied in clear into every injected pod\'s spec');
    }
    if (u.search !== '' || u.hash !== '' || (!pathAllowed && u.pathname !== '/')) {
      return fail(`must be a scheme, host and port only, such as ${what}`);
    }
    return ok(raw);
  };
}

// Host names, `.domain` suffixes, `*`, IPv4/IPv6 addresses, each with an optional `:port`.
const NO_PROXY_ENTRY = /^(\*|\.?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*|\[?[0-9A-Fa-f:.]+\]?)(:\d{1,5})?$/;

function noProxy(raw: string): Parsed<string> {
  const entries = raw.split(',').map((e) => e.trim()).filter((e) => e !== '');
  const bad = entries.filter((e) => !NO_PROXY_ENTRY.test(e));
  if (entries.length === 0 || bad.length > 0) {
    return fail(`must be a comma-separated list of host names, .domain suffixes, IP addresses or ranges (a-b), or * (Node.js reads no CIDR blocks); not one: ${bad.map((b) => JSON.stringify(b)).join(', ')}`);
  }
  return ok(entries.join(','));
}

function bool(raw: string): Parsed<boolean> {
  if (raw === 'true') return ok(true);
  if (raw === 'false' || raw === '') return ok(false);
  return fail('must be true or false');
}

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const configMapName = (raw: string): Parsed<string> =>
  DNS_SUBDOMAIN.test(raw) && raw.length <= 253 ? ok(raw) : fail('must be a ConfigMap name (a DNS subdomain: lower-case letters, digits, "-", ".")');
const configMapKey = (raw: string): Parsed<string> =>
  /^[-._a-zA-Z0-9]+$/.test(raw) && raw.length <= 253 && raw !== '.' && raw !== '..' ? ok(raw) : fail('must be a ConfigMap key (letters, digits, "-", "_", ".")');

const d = DEFAULT_MUTATION_CONFIG;

/** Every option, in the order docs/configuration.md and `--help` show them. */
export const OPTIONS = {
  host: {
    env: 'HOST',
    default: '::',
    doc: 'Address to listen on. `::` listens on every IPv6 and IPv4 address (falls back to `0.0.0.0` where IPv6 is off).',
    parse: host,
  },
  port: { env: 'PORT', default: '8443', doc: 'HTTPS port of the reviews (0: any free port).', parse: integer(0, 65535) },
  monitorPort: {
    env: 'MONITOR_PORT',
    default: undefined,
    doc: 'HTTPS port of `/healthz`, `/readyz` and `/metrics` alone (0: any free port), so that a client saturating the review port cannot fail the probes and have the pod restarted; the chart sets it. Unset: none (the review port answers them too, as it always does).',
    parse: (raw: string): Parsed<number | undefined> => (raw === '' ? ok(undefined) : integer(0, 65535)(raw)),
  },
  tlsCertFile: {
    env: 'TLS_CERT_FILE',
    default: undefined,
    doc: 'PEM serving certificate (chain). Re-read when it changes. Unset together with `TLS_KEY_FILE`: a self-signed development certificate for localhost/127.0.0.1.',
    parse: filePath,
  },
  tlsKeyFile: {
    env: 'TLS_KEY_FILE',
    default: undefined,
    doc: 'PEM private key of the serving certificate. Re-read when it changes.',
    parse: filePath,
  },
  logLevel: { env: 'LOG_LEVEL', default: 'info', doc: `One of ${LOG_LEVELS.join(', ')}.`, parse: oneOf(LOG_LEVELS) },
  fetcherImage: {
    env: 'FETCHER_IMAGE',
    default: d.fetcherImage,
    doc: 'Image of the init container (the fetcher).',
    parse: image,
  },
  fetcherImagePullPolicy: {
    env: 'FETCHER_IMAGE_PULL_POLICY',
    default: d.fetcherImagePullPolicy,
    doc: `Pull policy of the init container: ${PULL_POLICIES.join(', ')}.`,
    parse: oneOf(PULL_POLICIES),
  },
  fetcherCpuRequest: {
    env: 'FETCHER_CPU_REQUEST',
    default: d.fetcherResources.requests.cpu,
    doc: 'CPU request of the init container.',
    parse: quantity(false),
  },
  fetcherMemoryRequest: {
    env: 'FETCHER_MEMORY_REQUEST',
    default: d.fetcherResources.requests.memory,
    doc: 'Memory request of the init container.',
    parse: quantity(false),
  },
  fetcherCpuLimit: {
    env: 'FETCHER_CPU_LIMIT',
    default: d.fetcherResources.limits.cpu,
    doc: 'CPU limit of the init container (empty: none). Must not be below the request.',
    parse: quantity(true),
  },
  fetcherMemoryLimit: {
    env: 'FETCHER_MEMORY_LIMIT',
    default: d.fetcherResources.limits.memory,
    doc: 'Memory limit of the init container (empty: none). Must not be below the request.',
    parse: quantity(true),
  },
  fetcherUid: {
    env: 'FETCHER_UID',
    default: String(d.fetcherUid),
    doc: 'Non-root uid and gid the init container runs as.',
    parse: integer(1, 2147483647),
  },
  defaultMountPath: {
    env: 'DEFAULT_MOUNT_PATH',
    default: d.defaultMountPath,
    doc: 'Where the secrets volume is mounted when a pod does not set `secrets.k8s.aws/mount-path`.',
    parse: mountPath,
  },
  volumeSizeLimit: {
    env: 'VOLUME_SIZE_LIMIT',
    default: d.volumeSizeLimit ?? '',
    doc: "sizeLimit of the memory-backed secrets volume (empty: none). The app's own files under the mount path count against it, and past it the pod is evicted.",
    parse: quantity(true),
  },
  fetcherNodeCredentials: {
    env: 'FETCHER_NODE_CREDENTIALS',
    default: d.nodeCredentials,
    doc: `\`deny\`: the fetcher uses only the pod's own identity (IRSA or EKS Pod Identity) and fails a pod that has none without calling AWS. \`allow\`: a pod with neither fetches with whatever the AWS SDK's default chain finds (keys or a profile in the fetcher's environment, else the node's instance role, shared by every pod on the node); injected fetchers then carry \`${NODE_CREDENTIALS_ENV}=allow\`.`,
    parse: oneOf(NODE_CREDENTIALS_VALUES),
  },
  fetchDeadlineSeconds: {
    env: 'FETCH_DEADLINE_SECONDS',
    default: undefined,
    doc: "Overall deadline of the fetcher, retries included (unset: the fetcher's own default).",
    parse: (raw: string): Parsed<number | undefined> => (raw === '' ? ok(undefined) : integer(1, 3600)(raw)),
  },
  refresherCpuRequest: {
    env: 'REFRESHER_CPU_REQUEST',
    default: d.refresherResources.requests.cpu,
    doc: 'CPU request of the refresh sidecar (pods with `secrets.k8s.aws/refresh`); it idles between refreshes.',
    parse: quantity(false),
  },
  refresherMemoryRequest: {
    env: 'REFRESHER_MEMORY_REQUEST',
    default: d.refresherResources.requests.memory,
    doc: 'Memory request of the refresh sidecar.',
    parse: quantity(false),
  },
  refresherCpuLimit: {
    env: 'REFRESHER_CPU_LIMIT',
    default: d.refresherResources.limits.cpu,
    doc: 'CPU limit of the refresh sidecar (empty: none). Must not be below the request.',
    parse: quantity(true),
  },
  refresherMemoryLimit: {
    env: 'REFRESHER_MEMORY_LIMIT',
    default: d.refresherResources.limits.memory,
    doc: 'Memory limit of the refresh sidecar (empty: none). Must not be below the request.',
    parse: quantity(true),
  },
  cpuLimitPolicy: {
    env: 'CPU_LIMIT_POLICY',
    default: d.cpuLimitPolicy,
    doc: "`pod`: the fetcher's CPU limit is read from each pod: as large as the pod's own limits allow without raising the pod's effective CPU limit (the largest limit among its containers, or its pod-level limit), none in a pod without a CPU limit, and never below `FETCHER_CPU_LIMIT`; the refresher keeps `REFRESHER_CPU_LIMIT`, or none in a pod without a CPU limit. `fixed`: exactly `FETCHER_CPU_LIMIT` and `REFRESHER_CPU_LIMIT` in every pod. Why: the chart's README.",
    parse: oneOf(CPU_LIMIT_POLICIES),
  },
  nativeSidecars: {
    env: 'NATIVE_SIDECARS',
    default: String(d.nativeSidecars),
    doc: 'Whether the cluster runs native sidecars (Kubernetes 1.29+), which `secrets.k8s.aws/refresh` needs: `false` refuses pods that ask for it, naming the reason. The chart sets it from the cluster\'s version.',
    parse: oneOf(['true', 'false'] as const),
  },
  fetcherHttpsProxy: {
    env: 'FETCHER_HTTPS_PROXY',
    default: undefined,
    doc: "Proxy the fetcher sends its AWS calls (Secrets Manager, SSM, STS) through, as the fetcher's `HTTPS_PROXY`: for clusters whose egress goes through a proxy. `http://host:port` (CONNECT) or `https://`; no credentials in it, they would be copied into every pod.",
    parse: optional(url('http://proxy.internal:3128', false)),
  },
  fetcherHttpProxy: {
    env: 'FETCHER_HTTP_PROXY',
    default: undefined,
    doc: "The fetcher's `HTTP_PROXY`: the proxy for plain `http://` endpoint URLs (AWS itself is only HTTPS, so only an `http://` endpoint below needs it).",
    parse: optional(url('http://proxy.internal:3128', false)),
  },
  fetcherNoProxy: {
    env: 'FETCHER_NO_PROXY',
    default: undefined,
    doc: "The fetcher's `NO_PROXY`: hosts it reaches without the proxy, comma-separated (host names, `.domain` suffixes, IP addresses or `a-b` ranges, `*`; each may end in `:port`; no CIDR blocks), e.g. interface VPC endpoints. The node-local credential endpoints (EKS Pod Identity agent, instance metadata) never go through the proxy.",
    parse: optional(noProxy),
  },
  fetcherUseFipsEndpoint: {
    env: 'FETCHER_AWS_USE_FIPS_ENDPOINT',
    default: 'false',
    doc: "`true`: the fetcher's `AWS_USE_FIPS_ENDPOINT`, so it calls AWS's FIPS 140 endpoints (`secretsmanager-fips.<region>.amazonaws.com`, …), for regulated workloads and GovCloud. Not with an endpoint URL (the SDK refuses both).",
    parse: bool,
  },
  fetcherUseDualstackEndpoint: {
    env: 'FETCHER_AWS_USE_DUALSTACK_ENDPOINT',
    default: 'false',
    doc: "`true`: the fetcher's `AWS_USE_DUALSTACK_ENDPOINT`, so it calls AWS's IPv4-and-IPv6 endpoints, for IPv6-only clusters. Not with an endpoint URL.",
    parse: bool,
  },
  fetcherEndpointSecretsManager: {
    env: 'FETCHER_AWS_ENDPOINT_URL_SECRETS_MANAGER',
    default: undefined,
    doc: "The fetcher's `AWS_ENDPOINT_URL_SECRETS_MANAGER`: Secrets Manager at another `https://` URL, e.g. an interface VPC endpoint without private DNS, or an emulator behind TLS in a test cluster.",
    parse: optional(url('https://vpce-0abc.secretsmanager.us-east-1.vpce.amazonaws.com', true)),
  },
  fetcherEndpointSsm: {
    env: 'FETCHER_AWS_ENDPOINT_URL_SSM',
    default: undefined,
    doc: "The fetcher's `AWS_ENDPOINT_URL_SSM`: the same for SSM Parameter Store.",
    parse: optional(url('https://vpce-0abc.ssm.us-east-1.vpce.amazonaws.com', true)),
  },
  fetcherEndpointSts: {
    env: 'FETCHER_AWS_ENDPOINT_URL_STS',
    default: undefined,
    doc: "The fetcher's `AWS_ENDPOINT_URL_STS`: the same for STS (IRSA's token exchange, `role-arn` chaining, the failure report's identity).",
    parse: optional(url('https://vpce-0abc.sts.us-east-1.vpce.amazonaws.com', true)),
  },
  fetcherAllowPlainHttpEndpoints: {
    env: PLAIN_HTTP_SETTING,
    default: 'false',
    doc: "`true`: the three endpoint URLs above may be plain `http://`, for a local emulator (moto, LocalStack) on a development machine only: IRSA's token, the session credentials and the secret values then cross the network in clear. `false`: an `http://` endpoint stops the webhook at start and refuses pods. The chart has no value for it.",
    parse: bool,
  },
  fetcherCaBundleConfigMap: {
    env: 'FETCHER_CA_BUNDLE_CONFIGMAP',
    default: undefined,
    doc: "A ConfigMap in each injected pod's namespace (the shape trust-manager and cert-manager keep) whose PEM certificates the fetcher trusts besides the public CAs: a TLS-inspecting proxy's CA, a private endpoint's. Mounted read-only into the fetcher only, at `/etc/aws-secret-injector/ca`.",
    parse: optional(configMapName),
  },
  fetcherCaBundleKey: {
    env: 'FETCHER_CA_BUNDLE_KEY',
    default: 'ca.crt',
    doc: 'The key of that ConfigMap holding the PEM bundle.',
    parse: configMapKey,
  },
  writeThroughCluster: {
    env: 'WRITE_THROUGH_CLUSTER',
    default: undefined,
    doc: 'The cluster\'s name in write-through\'s Secrets Manager names (`<prefix>/<cluster>/<namespace>/<name>`), for pods\' `fromSecret` entries; unset, such entries are refused. The chart sets it from `writeThrough.cluster`.',
    parse: optional((raw: string): Parsed<string> => {
      const p = settingsProblems({ cluster: raw });
      return p.length > 0 ? fail(p[0]!.message) : ok(raw);
    }),
  },
  writeThroughPrefix: {
    env: 'WRITE_THROUGH_PREFIX',
    default: DEFAULT_STORE_PREFIX,
    doc: 'The first part of those names.',
    parse: (raw: string): Parsed<string> => {
      const p = settingsProblems({ cluster: 'x', prefix: raw });
      return p.length > 0 ? fail(p[0]!.message) : ok(raw);
    },
  },
  writeThroughRegion: {
    env: 'WRITE_THROUGH_REGION',
    default: undefined,
    doc: 'The region those secrets are kept in; injected pods with `fromSecret` entries read them there (unset: the fetcher\'s `AWS_REGION`).',
    parse: optional((raw: string): Parsed<string> => (isValidRegion(raw) ? ok(raw) : fail('must be an AWS region such as us-east-1'))),
  },
  writeThroughKmsKeyId: {
    env: 'WRITE_THROUGH_KMS_KEY_ID',
    default: undefined,
    doc: 'Writer only (`aws-secret-injector write-through`): the KMS key (id, ARN or alias) of the secrets it creates (unset: `aws/secretsmanager`).',
    parse: optional((raw: string): Parsed<string> => (/^[A-Za-z0-9:/_+=.@-]{1,2048}$/.test(raw) ? ok(raw) : fail('must be a KMS key id, ARN or alias'))),
  },
  writeThroughDeletionPolicy: {
    env: 'WRITE_THROUGH_DELETION_POLICY',
    default: 'Retain',
    doc: 'Writer only: what deleting a written-through Secret does to its Secrets Manager secret. `Retain`: nothing. `Delete`: deletion is scheduled with a recovery window, and creating the Secret again restores it.',
    parse: oneOf(['Retain', 'Delete'] as const),
  },
  writeThroughRecoveryDays: {
    env: 'WRITE_THROUGH_RECOVERY_DAYS',
    default: '30',
    doc: 'Writer only: the recovery window of `Delete`, 7 to 30 days.',
    parse: integer(7, 30),
  },
  writeThroughDeadlineSeconds: {
    env: 'WRITE_THROUGH_DEADLINE_SECONDS',
    default: '8',
    doc: "Writer only: how long one review may spend on Secrets Manager, retries of throttled calls included, before it is denied; below the writer's webhook timeoutSeconds.",
    parse: integer(1, 29),
  },
  writeThroughNamespace: {
    env: 'WRITE_THROUGH_NAMESPACE',
    default: undefined,
    doc: "Writer only: its own namespace, whose Secrets it never reviews (the chart sets it).",
    parse: optional((raw: string): Parsed<string> => (/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(raw) && raw.length <= 63 ? ok(raw) : fail('must be a namespace name'))),
  },
  shutdownDelaySeconds: {
    env: 'SHUTDOWN_DELAY_SECONDS',
    default: '0',
    doc: 'On SIGTERM, keep serving this long while reporting not ready and closing each connection after its answer, so the apiserver moves to other replicas before the listener closes. A few seconds in a cluster; 0 locally.',
    parse: integer(0, 300),
  },
  shutdownTimeoutSeconds: {
    env: 'SHUTDOWN_TIMEOUT_SECONDS',
    default: '25',
    doc: 'Once the listener is closed, how long reviews in flight may take before their connections are cut. Delay plus timeout must stay below the pod\'s terminationGracePeriodSeconds.',
    parse: integer(1, 3600),
  },
} satisfies Record<string, Option<unknown>>;

export type OptionKey = keyof typeof OPTIONS;

/** `TLS_CERT_FILE` -> `--tls-cert-file`. */
export function flagName(env: string): string {
  return `--${env.toLowerCase().replace(/_/g, '-')}`;
}

export type ConfigResult = { config: WebhookConfig } | { errors: string[] } | { help: string };

/** What `--help` says each serving command does; both read the one table of options. */
const SERVES = {
  webhook: 'Serves the mutating admission webhook over HTTPS (POST /mutate, GET /healthz, /readyz, /metrics).',
  'write-through': 'Serves the write-through writer over HTTPS (POST /mutate, GET /healthz, /readyz, /metrics): labelled Secrets\nstored in Secrets Manager, etcd keeping a reference (docs/write-through.md). WRITE_THROUGH_CLUSTER is required.',
};

function command(name: keyof typeof SERVES): Command {
  const cmd = new Command(`aws-secret-injector ${name}`)
    .description(`${SERVES[name]}\nEvery option is a flag or the environment variable beside it; a flag wins over the environment.`)
    .allowExcessArguments(false)
    .exitOverride();
  for (const o of Object.values(OPTIONS) as Array<Option<unknown>>) {
    const opt = new CommanderOption(`${flagName(o.env)} <value>`, o.doc.replace(/`/g, '')).env(o.env);
    cmd.addOption(o.default === undefined ? opt : opt.default(o.default));
  }
  return cmd;
}

/**
 * Reads every option from flags (`--port 8443` or `--port=8443`), then the environment, then the
 * default; returns the configuration or every problem found.
 */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv, name: keyof typeof SERVES = 'webhook'): ConfigResult {
  const errors: string[] = [];
  const cmd = command(name);
  let out = '';
  cmd.configureOutput({ writeOut: (s) => (out += s), writeErr: (s) => (out += s) });
  // commander is used for syntax and --help only; values from the environment and defaults are
  // read below from `env`, so only the flags given on the command line are taken from it.
  try {
    cmd.parse([...argv], { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError && (e.code === 'commander.helpDisplayed' || e.code === 'commander.help')) {
      return { help: out };
    }
    return { errors: [e instanceof CommanderError ? e.message.replace(/^error: /, '') : String(e)] };
  }
  const opts = cmd.opts<Record<string, string | undefined>>();
  const flags = new Map<string, string>();
  for (const o of Object.values(OPTIONS)) {
    const key = CommanderOption.prototype.attributeName.call(new CommanderOption(`${flagName(o.env)} <v>`));
    const value = opts[key];
    if (value !== undefined && cmd.getOptionValueSource(key) === 'cli') flags.set(o.env, value);
  }

  const values: Record<string, unknown> = {};
  for (const [key, opt] of Object.entries(OPTIONS) as Array<[OptionKey, Option<unknown>]>) {
    const fromFlag = flags.get(opt.env);
    const raw = fromFlag ?? env[opt.env] ?? opt.default;
    if (raw === undefined) continue;
    const parsed = opt.parse(raw.trim());
    if ('error' in parsed) {
      const source = fromFlag !== undefined ? flagName(opt.env) : opt.env;
      errors.push(`${source}=${JSON.stringify(raw)}: ${parsed.error}`);
    } else {
      values[key] = parsed.value;
    }
  }

  const v = values as { [K in OptionKey]?: ReturnType<(typeof OPTIONS)[K]['parse']> extends Parsed<infer T> ? T : never };
  const certSet = (flags.get('TLS_CERT_FILE') ?? env.TLS_CERT_FILE ?? '') !== '';
  const keySet = (flags.get('TLS_KEY_FILE') ?? env.TLS_KEY_FILE ?? '') !== '';
  if (certSet !== keySet) {
    errors.push('TLS_CERT_FILE and TLS_KEY_FILE must be set together (or both left unset for a development certificate)');
  }
  for (const [who, kind, req, lim] of [
    ['FETCHER', 'CPU', v.fetcherCpuRequest, v.fetcherCpuLimit],
    ['FETCHER', 'memory', v.fetcherMemoryRequest, v.fetcherMemoryLimit],
    ['REFRESHER', 'CPU', v.refresherCpuRequest, v.refresherCpuLimit],
    ['REFRESHER', 'memory', v.refresherMemoryRequest, v.refresherMemoryLimit],
  ] as const) {
    if (req !== undefined && lim !== undefined && quantityValue(req)! > quantityValue(lim)!) {
      const pods = who === 'FETCHER' ? 'every injected pod' : 'every pod with secrets.k8s.aws/refresh';
      errors.push(`${who}_${kind.toUpperCase()}_REQUEST (${req}) is above ${who}_${kind.toUpperCase()}_LIMIT (${lim}); Kubernetes would reject ${pods}`);
    }
  }
  const endpoints = [v.fetcherEndpointSecretsManager, v.fetcherEndpointSsm, v.fetcherEndpointSts].some((e) => e !== undefined);
  for (const [name, on] of [
    ['FETCHER_AWS_USE_FIPS_ENDPOINT', v.fetcherUseFipsEndpoint],
    ['FETCHER_AWS_USE_DUALSTACK_ENDPOINT', v.fetcherUseDualstackEndpoint],
  ] as const) {
    // The SDK's endpoint rules refuse a custom endpoint together with either switch ("Invalid
    // Configuration"): every fetch would fail.
    if (on === true && endpoints) errors.push(`${name}=true cannot be combined with a FETCHER_AWS_ENDPOINT_URL_* setting: the endpoint URL already names the host`);
  }
  if (v.fetcherAllowPlainHttpEndpoints !== true) {
    for (const [name, value] of [
      ['FETCHER_AWS_ENDPOINT_URL_SECRETS_MANAGER', v.fetcherEndpointSecretsManager],
      ['FETCHER_AWS_ENDPOINT_URL_SSM', v.fetcherEndpointSsm],
      ['FETCHER_AWS_ENDPOINT_URL_STS', v.fetcherEndpointSts],
    ] as const) {
      if (value !== undefined && !value.toLowerCase().startsWith('https://')) {
        errors.push(`${name}=${JSON.stringify(value)} must be https://: IRSA's token, the session credentials and the secret values would cross the network in clear (${PLAIN_HTTP_SETTING}=true allows http:// for a local emulator only)`);
      }
    }
  }
  if (errors.length > 0) return { errors };

  const requests: Record<string, string> = { cpu: v.fetcherCpuRequest!, memory: v.fetcherMemoryRequest! };
  const limits: Record<string, string> = {};
  if (v.fetcherCpuLimit !== undefined) limits.cpu = v.fetcherCpuLimit;
  if (v.fetcherMemoryLimit !== undefined) limits.memory = v.fetcherMemoryLimit;
  const refresherLimits: Record<string, string> = {};
  if (v.refresherCpuLimit !== undefined) refresherLimits.cpu = v.refresherCpuLimit;
  if (v.refresherMemoryLimit !== undefined) refresherLimits.memory = v.refresherMemoryLimit;
  const mutation: MutationConfig = {
    fetcherImage: v.fetcherImage!,
    fetcherImagePullPolicy: v.fetcherImagePullPolicy!,
    fetcherResources: { requests, limits },
    fetcherUid: v.fetcherUid!,
    defaultMountPath: v.defaultMountPath!,
    nativeSidecars: v.nativeSidecars === 'true',
    refresherResources: {
      requests: { cpu: v.refresherCpuRequest!, memory: v.refresherMemoryRequest! },
      limits: refresherLimits,
    },
    nodeCredentials: v.fetcherNodeCredentials!,
    cpuLimitPolicy: v.cpuLimitPolicy!,
  };
  if (v.fetcherAllowPlainHttpEndpoints === true) mutation.allowPlainHttpEndpoints = true;
  if (v.volumeSizeLimit !== undefined) mutation.volumeSizeLimit = v.volumeSizeLimit;
  if (v.fetchDeadlineSeconds !== undefined) mutation.fetchTimeouts = { deadlineSeconds: v.fetchDeadlineSeconds };
  const network: Record<NetworkEnvName, string | undefined> = {
    HTTPS_PROXY: v.fetcherHttpsProxy,
    HTTP_PROXY: v.fetcherHttpProxy,
    NO_PROXY: v.fetcherNoProxy,
    AWS_USE_FIPS_ENDPOINT: v.fetcherUseFipsEndpoint ? 'true' : undefined,
    AWS_USE_DUALSTACK_ENDPOINT: v.fetcherUseDualstackEndpoint ? 'true' : undefined,
    AWS_ENDPOINT_URL_SECRETS_MANAGER: v.fetcherEndpointSecretsManager,
    AWS_ENDPOINT_URL_SSM: v.fetcherEndpointSsm,
    AWS_ENDPOINT_URL_STS: v.fetcherEndpointSts,
  };
  const networkEnv = NETWORK_ENV.flatMap((name) => (network[name] === undefined ? [] : [{ name, value: network[name]! }]));
  if (networkEnv.length > 0) mutation.fetcherNetworkEnv = networkEnv;
  if (v.writeThroughCluster !== undefined) {
    mutation.store = { cluster: v.writeThroughCluster, prefix: v.writeThroughPrefix! };
    if (v.writeThroughRegion !== undefined) mutation.store.region = v.writeThroughRegion;
  }
  if (v.fetcherCaBundleConfigMap !== undefined) mutation.fetcherCaBundle = { configMap: v.fetcherCaBundleConfigMap, key: v.fetcherCaBundleKey! };

  const config: WebhookConfig = {
    host: v.host!,
    port: v.port!,
    logLevel: v.logLevel!,
    shutdownDelaySeconds: v.shutdownDelaySeconds!,
    shutdownTimeoutSeconds: v.shutdownTimeoutSeconds!,
    mutation,
    writeThrough: {
      deletionPolicy: v.writeThroughDeletionPolicy!,
      recoveryDays: v.writeThroughRecoveryDays!,
      deadlineSeconds: v.writeThroughDeadlineSeconds!,
    },
  };
  if (v.monitorPort !== undefined) config.monitorPort = v.monitorPort;
  if (v.writeThroughKmsKeyId !== undefined) config.writeThrough.kmsKeyId = v.writeThroughKmsKeyId;
  if (v.writeThroughNamespace !== undefined) config.writeThrough.namespace = v.writeThroughNamespace;
  if (v.tlsCertFile !== undefined && v.tlsKeyFile !== undefined) {
    config.tlsCertFile = v.tlsCertFile;
    config.tlsKeyFile = v.tlsKeyFile;
  }
  return { config };
}

/** The markdown table of docs/configuration.md (between the config markers). */
export function renderConfigTable(): string {
  const rows = Object.values(OPTIONS).map((o: Option<unknown>) => {
    const def = o.default === undefined ? '(unset)' : o.default === '' ? '(empty)' : `\`${o.default}\``;
    return `| \`${o.env}\` | \`${flagName(o.env)}\` | ${def} | ${o.doc.replace(/\|/g, '\\|')} |`;
  });
  return ['| Environment variable | Flag | Default | Meaning |', '| --- | --- | --- | --- |', ...rows].join('\n');
}
