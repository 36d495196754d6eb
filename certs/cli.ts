// `aws-secret-injector certs <generate|bootstrap|manage>`.
//
//   generate   a CA + serving certificate into --out DIR (ca.crt, tls.crt, tls.key 0600), for
//              people who manage certificates themselves and for local development
//   bootstrap  one pass (an init container): the TLS Secret exists and is valid for longer than
//              the renewal threshold, caBundle of every webhook entry matches, and the pair is
//              written to --out DIR; retries until --timeout-seconds, then fails with the reason
//   manage     the same pass every --interval-seconds until SIGTERM (a sidecar): renewals,
//              the end of a CA overlap and a wiped caBundle are handled within one interval
// Every flag also reads an environment variable (shown in --help); the flag wins.

import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { pino, type Logger as PinoLogger } from 'pino';
import {
  DEFAULT_CA_OVERLAP_SECONDS,
  DEFAULT_RENEW_BEFORE_DAYS,
  defaultClients,
  reconcile,
  type BootstrapOptions,
  type Clients,
} from './bootstrap.js';
import { CertsError } from './errors.js';
import { readServingDir, writeGeneratedFiles, writeServingDir } from './files.js';
import {
  DEFAULT_CA_VALIDITY_DAYS,
  DEFAULT_KEY_BITS,
  DEFAULT_VALIDITY_DAYS,
  generateCertificates,
  lifetimeAndKeyProblems,
  subjectAltNames,
} from './generate.js';

export const SERVICE_ACCOUNT_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';
export const DEFAULT_INTERVAL_SECONDS = 30;
export const DEFAULT_BOOTSTRAP_TIMEOUT_SECONDS = 120;

/** Seams for tests: the Kubernetes clients and where output goes. */
export interface CliDeps {
  clients?: () => Clients;
  stdout?: (s: string) => void;
  stderr?: (s: string) => void;
  logger?: PinoLogger;
  /** Resolves when the manager should stop (default: SIGTERM or SIGINT). */
  stopSignal?: Promise<void>;
  namespaceFile?: string;
  settleMs?: number;
}

function positive(integer: boolean) {
  return (raw: string): number => {
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
      throw new InvalidArgumentError(`expected a positive ${integer ? 'integer' : 'number'}.`);
    }
    return n;
  };
}

// Repeatable flags, and comma-separated lists in their environment variables.
function list(raw: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), ...raw.split(',').map((s) => s.trim()).filter(Boolean)];
}

const nameOptions = (): Option[] => [
  new Option('--dns <name>', 'extra DNS SAN (repeatable; env: comma-separated)').argParser(list),
  new Option('--ip <address>', 'extra IP SAN (repeatable; env: comma-separated)').argParser(list),
  new Option('--days <n>', 'lifetime of the serving certificate in days').argParser(positive(false)),
  new Option('--ca-days <n>', 'lifetime of a new CA in days').argParser(positive(false)),
  new Option('--key-bits <n>', 'RSA key size').argParser(positive(true)),
];

interface ClusterFlags {
  namespace?: string;
  secret?: string;
  webhookConfiguration?: string;
  service?: string;
  dns?: string[];
  ip?: string[];
  validityDays?: number;
  caValidityDays?: number;
  keyBits?: number;
  renewBeforeDays?: number;
  caOverlapSeconds?: number;
  out?: string;
  logLevel: string;
}

function clusterCommand(name: string, description: string): Command {
  const cmd = new Command(name).description(description);
  cmd.addOption(new Option('--namespace <ns>', `namespace of the Secret and Service (default: ${SERVICE_ACCOUNT_NAMESPACE_FILE})`).env('POD_NAMESPACE'));
  cmd.addOption(new Option('--secret <name>', 'the TLS Secret (type kubernetes.io/tls) to keep valid').env('CERTS_SECRET_NAME'));
  cmd.addOption(new Option('--webhook-configuration <name>', 'the MutatingWebhookConfiguration whose caBundle to keep').env('CERTS_WEBHOOK_CONFIGURATION'));
  cmd.addOption(new Option('--service <name>', 'the webhook Service (SANs <svc>, <svc>.<ns>, <svc>.<ns>.svc, <svc>.<ns>.svc.cluster.local)').env('CERTS_SERVICE_NAME'));
  cmd.addOption(new Option('--dns <name>', 'extra DNS SAN (repeatable; env: comma-separated)').env('CERTS_DNS_NAMES').argParser(list));
  cmd.addOption(new Option('--ip <address>', 'extra IP SAN (repeatable; env: comma-separated)').env('CERTS_IP_ADDRESSES').argParser(list));
  cmd.addOption(
    new Option('--validity-days <n>', `lifetime of the serving certificate in days (default ${DEFAULT_VALIDITY_DAYS})`)
      .env('CERTS_VALIDITY_DAYS')
      .argParser(positive(false)),
  );
  cmd.addOption(
    new Option('--ca-validity-days <n>', `lifetime of a new CA in days (default ${DEFAULT_CA_VALIDITY_DAYS})`)
      .env('CERTS_CA_VALIDITY_DAYS')
      .argParser(positive(false)),
  );
  cmd.addOption(new Option('--key-bits <n>', `RSA key size (default ${DEFAULT_KEY_BITS})`).env('CERTS_KEY_BITS').argParser(positive(true)));
  cmd.addOption(
    new Option('--renew-before-days <n>', `renew when the certificate has less than this left (default ${DEFAULT_RENEW_BEFORE_DAYS})`)
      .env('CERTS_RENEW_BEFORE_DAYS')
      .argParser(positive(false)),
  );
  cmd.addOption(
    new Option('--ca-overlap-seconds <n>', `keep the previous CA in caBundle this long after a CA rotation (default ${DEFAULT_CA_OVERLAP_SECONDS})`)
      .env('CERTS_CA_OVERLAP_SECONDS')
      .argParser(positive(false)),
  );
  cmd.addOption(new Option('--out <dir>', 'write tls.crt, tls.key and ca.crt here (atomically; the webhook reads TLS_CERT_FILE=<dir>/tls.crt)').env('CERTS_DIR'));
  cmd.addOption(new Option('--log-level <level>', 'log level').env('LOG_LEVEL').default('info'));
  return cmd;
}

function bootstrapOptions(flags: ClusterFlags, namespaceFile: string): BootstrapOptions {
  const problems: string[] = [];
  let namespace = flags.namespace;
  if (!namespace) {
    try {
      namespace = readFileSync(namespaceFile, 'utf8').trim();
    } catch {
      problems.push(`--namespace (or POD_NAMESPACE) is required outside a pod (${namespaceFile} is not readable)`);
    }
  }
  if (!flags.secret) problems.push('--secret (or CERTS_SECRET_NAME) is required');
  if (!flags.webhookConfiguration) problems.push('--webhook-configuration (or CERTS_WEBHOOK_CONFIGURATION) is required');
  if (!flags.service) problems.push('--service (or CERTS_SERVICE_NAME) is required');
  if (problems.length > 0) throw new CertsError('CERTS_USAGE', problems.join('; '));
  const opts: BootstrapOptions = {
    namespace: namespace!,
    secretName: flags.secret!,
    webhookConfigName: flags.webhookConfiguration!,
    serviceName: flags.service!,
    dnsNames: flags.dns ?? [],
    ipAddresses: flags.ip ?? [],
    validityDays: flags.validityDays ?? DEFAULT_VALIDITY_DAYS,
    caValidityDays: flags.caValidityDays ?? DEFAULT_CA_VALIDITY_DAYS,
    renewBeforeDays: flags.renewBeforeDays ?? DEFAULT_RENEW_BEFORE_DAYS,
    caOverlapSeconds: flags.caOverlapSeconds ?? DEFAULT_CA_OVERLAP_SECONDS,
    keyBits: flags.keyBits ?? DEFAULT_KEY_BITS,
  };
  if (opts.renewBeforeDays! >= opts.validityDays!) {
    throw new CertsError('CERTS_USAGE', `--renew-before-days (${opts.renewBeforeDays}) must be less than --validity-days (${opts.validityDays}), or every pass would renew`);
  }
  if (opts.validityDays! > opts.caValidityDays!) {
    throw new CertsError('CERTS_USAGE', `--validity-days (${opts.validityDays}) must not exceed --ca-validity-days (${opts.caValidityDays})`);
  }
  // Checks the names, lifetimes and key size now, so a typo fails at start with a usage error
  // rather than at the first issue (with a valid Secret, at the first renewal a year later).
  const invalid = lifetimeAndKeyProblems(opts);
  if (invalid.length > 0) throw new CertsError('CERTS_USAGE', `cannot generate certificates: ${invalid.join('; ')}`);
  checkNames(opts);
  return opts;
}

function checkNames(opts: BootstrapOptions): void {
  try {
    subjectAltNames({ serviceName: opts.serviceName, namespace: opts.namespace, dnsNames: opts.dnsNames ?? [], ipAddresses: opts.ipAddresses ?? [] });
  } catch (err) {
    if (err instanceof CertsError) throw new CertsError('CERTS_USAGE', err.message);
    throw err;
  }
}

// setTimeout fires at once for a delay past 2^31-1 ms (24.8 days): longer waits are cut to that.
const MAX_TIMER_MS = 2 ** 31 - 1;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function signalStop(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });
}

// Before serving a certificate of a new CA, give every apiserver's informer time to pick up the
// caBundle that trusts it (it was patched moments ago, by this replica or another one). CA changes
// are rare (years apart), so the wait costs nothing; renewals under the same CA do not wait.
export const BUNDLE_SETTLE_MS = 3_000;

function issuerOf(pem: string): string | undefined {
  try {
    return new X509Certificate(pem).issuer;
  } catch {
    return undefined;
  }
}

async function pass(
  clients: Clients,
  opts: BootstrapOptions,
  out: string | undefined,
  log: PinoLogger,
  settleMs: number,
  quietWhenUnchanged: boolean,
): Promise<void> {
  // What this replica serves now: its CA stays trusted should the Secret have to get a new one.
  const current = out ? await readServingDir(out) : undefined;
  const { material, outcome, patched } = await reconcile(clients, opts, log, current?.ca);
  let wrote = false;
  if (out) {
    const newCa = current !== undefined && current.cert !== material.cert && issuerOf(current.cert) !== issuerOf(material.cert);
    if (newCa && settleMs > 0) {
      log.info({ settleMs }, 'caBundle changed: waiting for the apiservers to pick it up before serving the new certificate');
      await sleep(settleMs);
    }
    wrote = await writeServingDir(out, material);
  }
  // `manage` logs a pass that changed nothing at debug level: every 30 s would be noise.
  const level = quietWhenUnchanged && outcome === 'adopted' && patched === 0 && !wrote ? 'debug' : 'info';
  log[level](
    { secret: `${opts.namespace}/${opts.secretName}`, outcome, caBundlePatched: patched, filesWritten: wrote, notAfter: material.notAfter.toISOString() },
    'certificate in order',
  );
}

function describeError(err: unknown): { code: string; message: string } {
  if (err instanceof CertsError) return { code: err.code, message: err.message };
  return { code: 'CERTS_KUBERNETES', message: err instanceof Error ? err.message : String(err) };
}

export async function run(argv: string[], deps: CliDeps = {}): Promise<number> {
  const stdout = deps.stdout ?? ((s: string) => process.stdout.write(s));
  const stderr = deps.stderr ?? ((s: string) => process.stderr.write(s));
  const namespaceFile = deps.namespaceFile ?? SERVICE_ACCOUNT_NAMESPACE_FILE;
  let exitCode = 0;
  const makeLogger = (level: string): PinoLogger => deps.logger ?? pino({ level, base: { component: 'certs' } });

  const program = new Command('aws-secret-injector certs')
    .description('Certificates of the webhook: generate them, or keep them valid in the cluster.')
    .exitOverride()
    .configureOutput({ writeOut: stdout, writeErr: stderr })
    .showHelpAfterError('(run with --help for usage)');

  const generate = new Command('generate')
    .description('write a new CA and serving certificate: ca.crt, tls.crt, tls.key (0600)')
    .requiredOption('--out <dir>', 'directory to write into (created if missing)')
    .option('--service <name>', 'Service name: SANs <svc>, <svc>.<ns>, <svc>.<ns>.svc, <svc>.<ns>.svc.cluster.local (needs --namespace)')
    .option('--namespace <ns>', 'namespace of the Service')
    .option('--force', 'replace existing files', false);
  for (const o of nameOptions()) generate.addOption(o);
  generate.addHelpText('after', '\nWithout --service, --dns or --ip the certificate is for localhost, 127.0.0.1 and ::1.');
  generate.action(async (flags: { out: string; service?: string; namespace?: string; dns?: string[]; ip?: string[]; days?: number; caDays?: number; keyBits?: number; force: boolean }) => {
    const noNames = !flags.service && !flags.namespace && !flags.dns?.length && !flags.ip?.length;
    const bundle = generateCertificates({
      ...(flags.service !== undefined || flags.namespace !== undefined ? { serviceName: flags.service ?? '', namespace: flags.namespace ?? '' } : {}),
      dnsNames: noNames ? ['localhost'] : (flags.dns ?? []),
      ipAddresses: noNames ? ['127.0.0.1', '::1'] : (flags.ip ?? []),
      ...(flags.days !== undefined ? { validityDays: flags.days } : {}),
      ...(flags.caDays !== undefined ? { caValidityDays: flags.caDays } : {}),
      ...(flags.keyBits !== undefined ? { keyBits: flags.keyBits } : {}),
    });
    const files = await writeGeneratedFiles(flags.out, bundle, flags.force);
    stdout(`${files.join('\n')}\nserving certificate valid until ${bundle.notAfter.toISOString()}; caBundle (base64 of ca.crt):\n${Buffer.from(bundle.caCert).toString('base64')}\n`);
  });

  const bootstrap = clusterCommand('bootstrap', 'make sure the TLS Secret and caBundle are valid, write the pair, exit (init container)');
  bootstrap.addOption(
    new Option('--timeout-seconds <n>', `keep retrying failures this long (default ${DEFAULT_BOOTSTRAP_TIMEOUT_SECONDS})`)
      .env('CERTS_BOOTSTRAP_TIMEOUT_SECONDS')
      .argParser(positive(false)),
  );
  bootstrap.action(async (flags: ClusterFlags & { timeoutSeconds?: number }) => {
    const opts = bootstrapOptions(flags, namespaceFile);
    const log = makeLogger(flags.logLevel);
    const timeoutSeconds = flags.timeoutSeconds ?? DEFAULT_BOOTSTRAP_TIMEOUT_SECONDS;
    const timeoutMs = timeoutSeconds * 1000;
    const deadline = Date.now() + timeoutMs;
    // At the deadline the request in flight is abandoned too: an apiserver (or a proxy before it)
    // that accepted the connection and never answers must not hold the pod's start-up past it.
    const expiry = new AbortController();
    const timer = setTimeout(() => expiry.abort(new Error(`--timeout-seconds (${timeoutSeconds}) ran out`)), Math.min(timeoutMs, MAX_TIMER_MS));
    const clients: Clients = { ...(deps.clients ?? defaultClients)(), signal: expiry.signal };
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          await pass(clients, opts, flags.out, log, deps.settleMs ?? BUNDLE_SETTLE_MS, false);
          return;
        } catch (err) {
          const { code, message } = describeError(err);
          const left = deadline - Date.now();
          if (code === 'CERTS_IO' || left < 2000) {
            log.error({ code, attempt }, message);
            exitCode = 1;
            stderr(`certs bootstrap: ${message}\n`);
            return;
          }
          // RBAC objects and the webhook configuration are created by the same helm install and
          // may not be in effect yet: retry until the deadline (the last attempt starts before it).
          log.warn({ code, attempt }, `${message}; retrying`);
          await sleep(Math.min(2000 * attempt, 10_000, left - 2000));
        }
      }
    } finally {
      clearTimeout(timer);
    }
  });

  const manage = clusterCommand('manage', 'repeat the bootstrap pass every interval until SIGTERM (sidecar)');
  manage.addOption(
    new Option('--interval-seconds <n>', `time between passes (default ${DEFAULT_INTERVAL_SECONDS})`)
      .env('CERTS_CHECK_INTERVAL_SECONDS')
      .argParser(positive(false)),
  );
  manage.action(async (flags: ClusterFlags & { intervalSeconds?: number }) => {
    const opts = bootstrapOptions(flags, namespaceFile);
    const log = makeLogger(flags.logLevel);
    const clients = (deps.clients ?? defaultClients)();
    const stop = deps.stopSignal ?? signalStop();
    let stopped = false;
    // One listener for the whole run (not one per interval): it cuts the current wait short.
    let wake: (() => void) | undefined;
    void stop.then(() => {
      stopped = true;
      wake?.();
    });
    const intervalMs = (flags.intervalSeconds ?? DEFAULT_INTERVAL_SECONDS) * 1000;
    log.info({ secret: `${opts.namespace}/${opts.secretName}`, webhookConfiguration: opts.webhookConfigName, intervalSeconds: intervalMs / 1000 }, 'managing the webhook certificate');
    while (!stopped) {
      try {
        await pass(clients, opts, flags.out, log, deps.settleMs ?? BUNDLE_SETTLE_MS, true);
      } catch (err) {
        // Keep serving what we have; the next pass tries again.
        const { code, message } = describeError(err);
        log.error({ code }, message);
      }
      if (stopped) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(intervalMs, MAX_TIMER_MS));
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    log.info({}, 'stopped');
  });

  program.addCommand(generate).addCommand(bootstrap).addCommand(manage);
  for (const c of [generate, bootstrap, manage]) c.exitOverride().configureOutput({ writeOut: stdout, writeErr: stderr });

  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help exits 0; a missing subcommand prints the help and exits non-zero.
      return err.exitCode === 0 ? 0 : 2;
    }
    const { code, message } = describeError(err);
    stderr(`certs: ${message}\n`);
    return code === 'CERTS_USAGE' || code === 'CERTS_INVALID_REQUEST' ? 2 : 1;
  }
  return exitCode;
}
