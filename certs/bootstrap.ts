// In-cluster certificates: keep the webhook's TLS Secret valid and the MutatingWebhookConfiguration's
// caBundle pointing at its CA, through the Kubernetes API.
//
// The Secret (type kubernetes.io/tls) is the one source of truth every replica reads:
//   tls.crt, tls.key   the serving certificate and key
//   ca.crt, ca.key     the CA that signed them (ca.key lets a renewal keep the CA, so the
//                      caBundle need not change)
//   ca-previous.crt    the CA before the last CA rotation, present until the time in the
//                      annotation secrets.k8s.aws/previous-ca-until
// caBundle = ca.crt followed by ca-previous.crt while it is present, so replicas still serving
// a certificate of the old CA stay trusted until they have picked up the new one. A Secret that
// lost its CA (emptied by `helm upgrade --force`, deleted by hand) takes as previous CA the CAs the
// configuration's caBundle trusts at that moment: the replicas are still serving under them.
//
// Concurrency: several replicas may start at once. Writes are a create (409 AlreadyExists -> re-read
// and adopt the winner's) or an update carrying the resourceVersion read (409 Conflict -> re-read
// and decide again), so all converge on exactly one certificate. caBundle is changed with a JSON
// patch that tests each webhook entry's name at its index first, so a concurrent change of the
// configuration (helm upgrade) is never overwritten blindly.

import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import {
  AdmissionregistrationV1Api,
  ApiException,
  CoreV1Api,
  KubeConfig,
  Observable,
  PatchStrategy,
  setHeaderOptions,
  type ConfigurationOptions,
  type ObservableMiddleware,
  type V1MutatingWebhookConfiguration,
  type V1Secret,
} from '@kubernetes/client-node';
import { CertsError } from './errors.js';
import { DEFAULT_CA_VALIDITY_DAYS, DEFAULT_KEY_BITS, DEFAULT_VALIDITY_DAYS, generateCertificates, subjectAltNames } from './generate.js';

export const PREVIOUS_CA_UNTIL_ANNOTATION = 'secrets.k8s.aws/previous-ca-until';
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'aws-secret-injector';
export const DEFAULT_RENEW_BEFORE_DAYS = 30;
// Replicas re-read the Secret every check interval (30 s) and the webhook reloads its files within
// seconds; an hour leaves a wide margin for a replica that was briefly unable to reach the API.
export const DEFAULT_CA_OVERLAP_SECONDS = 3600;
const DAY_MS = 24 * 60 * 60 * 1000;
const ACCEPTED_TYPES = ['kubernetes.io/tls', 'Opaque'];
// A request to the Kubernetes API with no answer after this long is abandoned, and the pass fails
// saying so. The client alone waits as long as the connection stays up (an apiserver or proxy that
// accepted it and hangs: minutes, until TCP gives up); these are small objects a healthy apiserver
// reads and writes in milliseconds, and the apiserver itself times requests out at 60 s.
export const REQUEST_TIMEOUT_MS = 10_000;
// A write that loses a race re-reads and decides again; more losses than this in a row means
// something else keeps rewriting the object.
const MAX_ATTEMPTS = 8;

export interface BootstrapOptions {
  namespace: string;
  /** The TLS Secret in `namespace` (created as kubernetes.io/tls; an existing Opaque one is used as it is). */
  secretName: string;
  /** The MutatingWebhookConfiguration whose every webhook entry gets the caBundle. */
  webhookConfigName: string;
  /** The webhook Service: SANs <svc>, <svc>.<ns>, <svc>.<ns>.svc, <svc>.<ns>.svc.cluster.local. */
  serviceName: string;
  dnsNames?: string[];
  ipAddresses?: string[];
  validityDays?: number;
  caValidityDays?: number;
  /** Renew the serving certificate when it has less than this left. */
  renewBeforeDays?: number;
  /** How long the previous CA stays in the bundle after a CA rotation. */
  caOverlapSeconds?: number;
  keyBits?: number;
  now?: () => Date;
}

export interface Logger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

/** What the webhook serves, decoded from the Secret. */
export interface TlsMaterial {
  cert: string;
  key: string;
  caCert: string;
  /** ca.crt then ca-previous.crt (PEM): what caBundle holds, decoded. */
  caBundle: string;
  notAfter: Date;
  /** resourceVersion of the Secret this came from. */
  resourceVersion: string;
}

type Decision =
  | { action: 'create' }
  | { action: 'adopt'; material: TlsMaterial }
  | { action: 'renew'; reason: string; keepCa: boolean }
  | { action: 'drop-previous-ca'; reason: string };

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: string | undefined): string | undefined => (s === undefined ? undefined : Buffer.from(s, 'base64').toString('utf8'));

function parseCert(pem: string | undefined): X509Certificate | undefined {
  if (!pem) return undefined;
  try {
    return new X509Certificate(pem);
  } catch {
    return undefined;
  }
}

function parseKey(pem: string | undefined): KeyObject | undefined {
  if (!pem) return undefined;
  try {
    return createPrivateKey(pem);
  } catch {
    return undefined;
  }
}

function wantedNames(opts: BootstrapOptions): { dnsNames: string[]; ipAddresses: string[] } {
  return subjectAltNames({
    serviceName: opts.serviceName,
    namespace: opts.namespace,
    dnsNames: opts.dnsNames ?? [],
    ipAddresses: opts.ipAddresses ?? [],
  });
}

function previousCaUntil(secret: V1Secret): Date | undefined {
  const raw = secret.metadata?.annotations?.[PREVIOUS_CA_UNTIL_ANNOTATION];
  const t = raw ? new Date(raw) : undefined;
  return t && !Number.isNaN(t.getTime()) ? t : undefined;
}

/** The caBundle (PEM) a Secret calls for. */
export function caBundleOf(secret: V1Secret, now: Date): string {
  const current = unb64(secret.data?.['ca.crt']) ?? '';
  const previous = unb64(secret.data?.['ca-previous.crt']);
  const until = previousCaUntil(secret);
  const keepPrevious = previous !== undefined && until !== undefined && until.getTime() > now.getTime() && previous !== current;
  const pems = [current, ...(keepPrevious ? [previous] : [])].map((p) => (p.endsWith('\n') ? p : `${p}\n`));
  return pems.join('');
}

/**
 * What to do with the Secret as read (undefined: it does not exist). Pure: every branch of the
 * bootstrap is decided here, so it is tested without an API server.
 */
export function decide(secret: V1Secret | undefined, opts: BootstrapOptions, now: Date): Decision {
  if (!secret) return { action: 'create' };
  const where = `Secret ${opts.namespace}/${opts.secretName}`;
  // Opaque too: a chart pre-creates the Secret empty (RBAC cannot limit `create` to one name), and
  // a Secret's type cannot be changed later. The data keys are the same either way.
  if (secret.type !== undefined && !ACCEPTED_TYPES.includes(secret.type)) {
    throw new CertsError(
      'CERTS_KUBERNETES',
      `${where} has type ${JSON.stringify(secret.type)}, not kubernetes.io/tls or Opaque, and a Secret's type cannot be changed: delete it (it will be recreated) or choose another name`,
    );
  }
  const renewBeforeMs = (opts.renewBeforeDays ?? DEFAULT_RENEW_BEFORE_DAYS) * DAY_MS;
  const validityMs = (opts.validityDays ?? DEFAULT_VALIDITY_DAYS) * DAY_MS;
  const t = now.getTime();
  const data = secret.data ?? {};
  const ca = parseCert(unb64(data['ca.crt']));
  const caKey = parseKey(unb64(data['ca.key']));
  // Keep the CA when it can sign a full-length serving certificate: the caBundle stays as it is.
  const caUsable =
    ca !== undefined &&
    ca.ca &&
    caKey !== undefined &&
    ca.checkPrivateKey(caKey) &&
    new Date(ca.validFrom).getTime() <= t &&
    new Date(ca.validTo).getTime() - t >= validityMs;
  const renew = (reason: string): Decision => ({ action: 'renew', reason, keepCa: caUsable });

  const certPem = unb64(data['tls.crt']);
  const keyPem = unb64(data['tls.key']);
  const leaf = parseCert(certPem);
  const key = parseKey(keyPem);
  if (!ca) return renew('ca.crt is missing or not a certificate');
  if (!leaf) return renew('tls.crt is missing or not a certificate');
  if (!key) return renew('tls.key is missing or not a private key');
  if (!leaf.checkPrivateKey(key)) return renew('tls.key does not belong to tls.crt');
  if (!leaf.checkIssued(ca) || !leaf.verify(ca.publicKey)) return renew('tls.crt is not signed by ca.crt');
  const names = wantedNames(opts);
  // DNS names compared literally against the SAN list (a wildcard asked for must be there as a
  // wildcard); IPs through checkIP, which normalises IPv6 spellings.
  const sanDns = new Set(
    (leaf.subjectAltName ?? '')
      .split(', ')
      .filter((e) => e.startsWith('DNS:'))
      .map((e) => e.slice(4).toLowerCase()),
  );
  const missing = [
    ...names.dnsNames.filter((n) => !sanDns.has(n.toLowerCase())),
    ...names.ipAddresses.filter((ip) => leaf.checkIP(ip) === undefined),
  ];
  if (missing.length > 0) return renew(`tls.crt lacks the names ${missing.join(', ')}`);
  const notAfter = new Date(leaf.validTo);
  const caNotAfter = new Date(ca.validTo);
  const expiry = Math.min(notAfter.getTime(), caNotAfter.getTime());
  if (expiry - t < renewBeforeMs) return renew(`the certificate chain expires at ${new Date(expiry).toISOString()}`);
  if (new Date(leaf.validFrom).getTime() > t) return renew(`tls.crt is not valid before ${leaf.validFrom}`);

  const until = previousCaUntil(secret);
  if (data['ca-previous.crt'] !== undefined && (until === undefined || until.getTime() <= t)) {
    return { action: 'drop-previous-ca', reason: until ? `the overlap ended at ${until.toISOString()}` : 'no overlap end recorded' };
  }
  return {
    action: 'adopt',
    material: {
      cert: certPem!,
      key: keyPem!,
      caCert: unb64(data['ca.crt'])!,
      caBundle: caBundleOf(secret, now),
      notAfter,
      resourceVersion: secret.metadata?.resourceVersion ?? '',
    },
  };
}

/**
 * The CA certificates in a PEM bundle that can still sign for the webhook: CAs, not expired. Used
 * as the previous CA when the Secret lost its own (emptied by `helm upgrade --force`, or by hand)
 * while replicas still serve certificates the configuration's caBundle trusts.
 */
export function liveCas(bundlePem: string | undefined, now: Date): string[] {
  const blocks = (bundlePem ?? '').match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];
  const kept: string[] = [];
  for (const block of blocks) {
    const cert = parseCert(block);
    if (cert?.ca && new Date(cert.validTo).getTime() > now.getTime() && !kept.includes(`${block}\n`)) kept.push(`${block}\n`);
  }
  // A bundle holds the current CA and at most one previous one; more is not ours to carry.
  return kept.slice(0, 2);
}

/**
 * The Secret's new content for a create or a renewal. `trustedCaBundle` (PEM): what the
 * configuration's caBundle trusts now; with a new CA and no old one in the Secret, its CAs stay in
 * the bundle for the overlap, so replicas still serving a certificate they signed stay trusted.
 */
export function issue(existing: V1Secret | undefined, keepCa: boolean, opts: BootstrapOptions, now: Date, trustedCaBundle?: string): V1Secret {
  const names = wantedNames(opts);
  const data = existing?.data ?? {};
  const bundle = generateCertificates({
    ...names,
    validityDays: opts.validityDays ?? DEFAULT_VALIDITY_DAYS,
    caValidityDays: opts.caValidityDays ?? DEFAULT_CA_VALIDITY_DAYS,
    keyBits: opts.keyBits ?? DEFAULT_KEY_BITS,
    now,
    ...(keepCa ? { ca: { cert: unb64(data['ca.crt'])!, key: unb64(data['ca.key'])! } } : {}),
  });
  const annotations = { ...(existing?.metadata?.annotations ?? {}) };
  const newData: Record<string, string> = {
    'tls.crt': b64(bundle.cert),
    'tls.key': b64(bundle.key),
    'ca.crt': b64(bundle.caCert),
    'ca.key': b64(bundle.caKey),
  };
  if (keepCa) {
    // The CA stays: so does an overlap still running from an earlier rotation.
    if (data['ca-previous.crt'] !== undefined) newData['ca-previous.crt'] = data['ca-previous.crt'];
  } else {
    delete annotations[PREVIOUS_CA_UNTIL_ANNOTATION];
    const oldCa = parseCert(unb64(data['ca.crt']));
    const trusted = liveCas(trustedCaBundle, now).filter((pem) => pem !== bundle.caCert);
    let previous: string | undefined;
    if (oldCa && new Date(oldCa.validTo).getTime() > now.getTime()) previous = data['ca.crt']!;
    else if (trusted.length > 0) previous = b64(trusted.join(''));
    if (previous !== undefined) {
      newData['ca-previous.crt'] = previous;
      const overlapMs = (opts.caOverlapSeconds ?? DEFAULT_CA_OVERLAP_SECONDS) * 1000;
      annotations[PREVIOUS_CA_UNTIL_ANNOTATION] = new Date(now.getTime() + overlapMs).toISOString();
    }
  }
  const { managedFields: _managedFields, ...metadata } = existing?.metadata ?? {};
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: existing?.type ?? 'kubernetes.io/tls',
    metadata: {
      ...metadata,
      name: opts.secretName,
      namespace: opts.namespace,
      // An existing Secret keeps its labels (a chart's placeholder says managed-by: Helm, and helm
      // checks that label); only a Secret we create is labelled as ours.
      labels: existing ? { ...(existing.metadata?.labels ?? {}) } : { [MANAGED_BY_LABEL]: MANAGED_BY },
      annotations,
    },
    data: newData,
  };
}

function withoutPreviousCa(secret: V1Secret): V1Secret {
  const data = { ...(secret.data ?? {}) };
  delete data['ca-previous.crt'];
  const annotations = { ...(secret.metadata?.annotations ?? {}) };
  delete annotations[PREVIOUS_CA_UNTIL_ANNOTATION];
  return { ...secret, metadata: { ...secret.metadata, annotations }, data };
}

function statusOf(err: unknown): number | undefined {
  if (err instanceof ApiException) return err.code;
  return undefined;
}

function apiError(what: string, err: unknown): CertsError {
  const status = statusOf(err);
  let detail = err instanceof Error ? err.message : String(err);
  if (err instanceof ApiException) {
    const body = typeof err.body === 'string' ? err.body : JSON.stringify(err.body);
    try {
      const parsed = JSON.parse(body) as { message?: string };
      if (parsed.message) detail = parsed.message;
    } catch {
      detail = body.slice(0, 500);
    }
  }
  const hint = status === 403 ? ' (check the RBAC Role/ClusterRole of the webhook ServiceAccount)' : '';
  return new CertsError('CERTS_KUBERNETES', `${what}: ${status ? `HTTP ${status}: ` : ''}${detail}${hint}`, { cause: err });
}

export interface Clients {
  core: CoreV1Api;
  admission: AdmissionregistrationV1Api;
  /** The API server's URL, named when it does not answer. */
  server?: string;
  /** Each request is abandoned after this long (default REQUEST_TIMEOUT_MS). */
  requestTimeoutMs?: number;
  /** Abandons the request in flight and fails every later one: the caller's deadline. Its reason (an Error) says which. */
  signal?: AbortSignal;
}

export function clientsFrom(kc: KubeConfig): Clients {
  return {
    core: kc.makeApiClient(CoreV1Api),
    admission: kc.makeApiClient(AdmissionregistrationV1Api),
    ...(kc.getCurrentCluster()?.server ? { server: kc.getCurrentCluster()!.server } : {}),
  };
}

const resolved = <T>(value: T) => new Observable(Promise.resolve(value));

/**
 * One API request, bounded: abandoned (the socket closed) after `clients.requestTimeoutMs` or when
 * `clients.signal` aborts, whichever comes first, and rejected at that moment even should the
 * client not honour the abort (credentials of an exec plugin are obtained before the request).
 */
async function bounded<T>(
  clients: Clients,
  send: (options: ConfigurationOptions<ObservableMiddleware>) => Promise<T>,
): Promise<T> {
  const timeoutMs = clients.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
  const api = `the Kubernetes API${clients.server ? ` at ${clients.server}` : ''}`;
  const controller = new AbortController();
  const abandoned = new Promise<never>((_resolve, reject) => {
    controller.signal.addEventListener('abort', () => reject(controller.signal.reason as Error), { once: true });
  });
  const outer = clients.signal;
  const onOuterAbort = () => {
    const why = outer?.reason instanceof Error ? outer.reason.message : 'the caller gave up';
    controller.abort(new Error(`${api} had not answered when ${why}`));
  };
  const timer = setTimeout(() => controller.abort(new Error(`${api} did not answer within ${timeoutMs / 1000} s`)), timeoutMs);
  outer?.addEventListener('abort', onOuterAbort, { once: true });
  if (outer?.aborted) onOuterAbort();
  const options: ConfigurationOptions<ObservableMiddleware> = {
    middleware: [
      {
        pre: (context) => {
          context.setSignal(controller.signal);
          return resolved(context);
        },
        post: (response) => resolved(response),
      },
    ],
    middlewareMergeStrategy: 'append',
  };
  try {
    return await Promise.race([controller.signal.aborted ? abandoned : send(options), abandoned]);
  } finally {
    clearTimeout(timer);
    outer?.removeEventListener('abort', onOuterAbort);
  }
}

/** In-cluster config when running in a pod, else $KUBECONFIG or ~/.kube/config. */
export function defaultClients(): Clients {
  const kc = new KubeConfig();
  try {
    kc.loadFromDefault();
  } catch (err) {
    const from = process.env.KUBECONFIG ? `KUBECONFIG=${process.env.KUBECONFIG}` : 'the in-cluster service account or ~/.kube/config';
    throw new CertsError('CERTS_KUBERNETES', `cannot load the Kubernetes client configuration from ${from}: ${(err as Error).message}`, { cause: err });
  }
  return clientsFrom(kc);
}

async function readSecret(clients: Clients, opts: BootstrapOptions): Promise<V1Secret | undefined> {
  try {
    return await bounded(clients, (o) => clients.core.readNamespacedSecret({ name: opts.secretName, namespace: opts.namespace }, o));
  } catch (err) {
    if (statusOf(err) === 404) return undefined;
    throw apiError(`reading Secret ${opts.namespace}/${opts.secretName}`, err);
  }
}

/**
 * The caBundle (PEM) the configuration's first entry holding one trusts now (nothing when the
 * configuration does not exist: ensureCaBundle reports that right after), followed by the CA this
 * replica serves under (`served`): after `helm upgrade --force` wiped both the Secret and
 * caBundle, that is what the running replicas still present. Any other failure to read it fails
 * the pass before the new CA is written: a CA written without the trusted ones beside it would
 * leave every replica still serving under them untrusted.
 */
async function trustedCaBundle(clients: Clients, opts: BootstrapOptions, served?: string): Promise<string | undefined> {
  let live: string | undefined;
  try {
    const config = await bounded(clients, (o) => clients.admission.readMutatingWebhookConfiguration({ name: opts.webhookConfigName }, o));
    live = unb64(config.webhooks?.find((w) => w.clientConfig?.caBundle)?.clientConfig.caBundle);
  } catch (err) {
    if (statusOf(err) !== 404) {
      throw apiError(`reading the CAs MutatingWebhookConfiguration ${opts.webhookConfigName} trusts, before replacing the CA of Secret ${opts.namespace}/${opts.secretName}`, err);
    }
    live = undefined;
  }
  return live === undefined && served === undefined ? undefined : `${live ?? ''}\n${served ?? ''}`;
}

export type SecretOutcome = 'created' | 'adopted' | 'renewed' | 'dropped-previous-ca';

/**
 * Makes sure the TLS Secret exists and is valid for longer than the renewal threshold; returns
 * what the webhook should serve. Converges with concurrent callers on one certificate.
 */
export async function ensureSecret(
  clients: Clients,
  opts: BootstrapOptions,
  log: Logger,
  servedCaBundle?: string,
): Promise<{ material: TlsMaterial; outcome: SecretOutcome }> {
  const where = `${opts.namespace}/${opts.secretName}`;
  let outcome: SecretOutcome = 'adopted';
  let written: string | undefined; // resourceVersion of our own last write
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    const now = opts.now?.() ?? new Date();
    const secret = await readSecret(clients, opts);
    const decision = decide(secret, opts, now);
    if (written !== undefined && secret?.metadata?.resourceVersion === written && decision.action !== 'adopt') {
      // What we just wrote does not satisfy us: writing again would loop. Never expected.
      throw new CertsError('CERTS_KUBERNETES', `Secret ${where} as just written is still not usable (${decision.action}${'reason' in decision ? `: ${decision.reason}` : ''})`);
    }
    try {
      switch (decision.action) {
        case 'adopt':
          return { material: decision.material, outcome };
        case 'create': {
          const trusted = await trustedCaBundle(clients, opts, servedCaBundle);
          const body = issue(undefined, false, opts, now, trusted);
          const created = await bounded(clients, (o) => clients.core.createNamespacedSecret({ namespace: opts.namespace, body }, o));
          written = created.metadata?.resourceVersion;
          log.info({ secret: where }, 'created the TLS Secret with a new CA');
          outcome = 'created';
          break;
        }
        case 'renew': {
          const trusted = decision.keepCa ? undefined : await trustedCaBundle(clients, opts, servedCaBundle);
          const body = issue(secret, decision.keepCa, opts, now, trusted);
          const replaced = await bounded(clients, (o) => clients.core.replaceNamespacedSecret({ name: opts.secretName, namespace: opts.namespace, body }, o));
          written = replaced.metadata?.resourceVersion;
          log.info({ secret: where, reason: decision.reason, newCa: !decision.keepCa }, 'renewed the TLS Secret');
          outcome = 'renewed';
          break;
        }
        case 'drop-previous-ca': {
          const body = withoutPreviousCa(secret!);
          const replaced = await bounded(clients, (o) => clients.core.replaceNamespacedSecret({ name: opts.secretName, namespace: opts.namespace, body }, o));
          written = replaced.metadata?.resourceVersion;
          log.info({ secret: where, reason: decision.reason }, 'dropped the previous CA from the TLS Secret');
          outcome = 'dropped-previous-ca';
          break;
        }
      }
    } catch (err) {
      if (err instanceof CertsError) throw err;
      // 409: another replica created or changed the Secret since we read it. Re-read and use theirs.
      if (statusOf(err) === 409) {
        log.info({ secret: where, action: decision.action, attempt }, 'the TLS Secret changed concurrently; re-reading it');
        outcome = 'adopted';
        continue;
      }
      if (decision.action === 'create' && statusOf(err) === 403) {
        // The chart grants no `create` (RBAC cannot limit it to one name): it makes the Secret itself.
        throw new CertsError(
          'CERTS_KUBERNETES',
          `Secret ${where} does not exist and this ServiceAccount may not create it: the chart creates it empty, so \`helm upgrade\` of the release (with --reuse-values) brings it back; outside the chart grant \`create\` on secrets in ${opts.namespace}`,
          { cause: err },
        );
      }
      throw apiError(`${decision.action === 'create' ? 'creating' : 'updating'} Secret ${where}`, err);
    }
    // Our write won; loop once more to read back exactly what is stored.
  }
  throw new CertsError('CERTS_KUBERNETES', `Secret ${where} kept changing under us: gave up after ${MAX_ATTEMPTS} attempts`);
}

/**
 * Sets clientConfig.caBundle of every webhook entry of the MutatingWebhookConfiguration to
 * `caBundlePem` where it differs. Returns how many entries were patched.
 */
export async function ensureCaBundle(clients: Clients, opts: BootstrapOptions, caBundlePem: string, log: Logger): Promise<number> {
  const name = opts.webhookConfigName;
  const want = b64(caBundlePem);
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    let config: V1MutatingWebhookConfiguration;
    try {
      config = await bounded(clients, (o) => clients.admission.readMutatingWebhookConfiguration({ name }, o));
    } catch (err) {
      if (statusOf(err) === 404) {
        throw new CertsError('CERTS_KUBERNETES', `MutatingWebhookConfiguration ${name} does not exist (yet); install the chart, or check --webhook-config`, { cause: err });
      }
      throw apiError(`reading MutatingWebhookConfiguration ${name}`, err);
    }
    const ops: object[] = [];
    const stale: string[] = [];
    (config.webhooks ?? []).forEach((w, i) => {
      if (w.clientConfig?.caBundle === want) return;
      stale.push(w.name);
      ops.push({ op: 'test', path: `/webhooks/${i}/name`, value: w.name });
      ops.push({ op: 'add', path: `/webhooks/${i}/clientConfig/caBundle`, value: want });
    });
    if (ops.length === 0) return 0;
    try {
      await bounded(clients, (o) =>
        clients.admission.patchMutatingWebhookConfiguration({ name, body: ops }, setHeaderOptions('Content-Type', PatchStrategy.JsonPatch, o)),
      );
      log.info({ webhookConfiguration: name, webhooks: stale }, 'patched caBundle');
      return stale.length;
    } catch (err) {
      // A failed `test` (the list changed since we read it; kube-apiserver answers 422 Invalid), a
      // conflict or a transient server error: read again.
      const status = statusOf(err);
      if (status === 409 || status === 422 || status === 500) {
        log.info({ webhookConfiguration: name, attempt, status }, 'the webhook configuration changed concurrently; re-reading it');
        continue;
      }
      throw apiError(`patching caBundle of MutatingWebhookConfiguration ${name}`, err);
    }
  }
  throw new CertsError('CERTS_KUBERNETES', `MutatingWebhookConfiguration ${name} kept changing under us: gave up after ${MAX_ATTEMPTS} attempts`);
}

/** One pass: the Secret valid, then caBundle matching it. The caller serves `material`. */
export async function reconcile(
  clients: Clients,
  opts: BootstrapOptions,
  log: Logger,
  servedCaBundle?: string,
): Promise<{ material: TlsMaterial; outcome: SecretOutcome; patched: number }> {
  const { material, outcome } = await ensureSecret(clients, opts, log, servedCaBundle);
  // The bundle is patched before the caller writes the certificate files, so the apiserver trusts
  // a new CA before any replica serves a certificate it signed.
  const patched = await ensureCaBundle(clients, opts, material.caBundle, log);
  return { material, outcome, patched };
}
