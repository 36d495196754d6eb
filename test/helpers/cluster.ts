// A real Kubernetes control plane for the e2e suite: etcd, kube-apiserver and
// kube-controller-manager (built by test/setup/kube.sh) on free 127.0.0.1 ports in a temp dir, and
// kube-scheduler when asked for. Without a node (the e2e suite) pods stay Pending, which is all
// admission needs; the node suite adds a kubelet (test/helpers/node.ts).
//
// The apiserver's serving certificate comes from certs/generate.ts (IP SAN 127.0.0.1); the admin
// identity is a static token in group system:masters; a fresh RSA key signs ServiceAccount tokens
// so TokenRequest works. startControlPlane() runs in the e2e global set-up; test files get its
// ClusterInfo through vitest's provide/inject and call connectCluster().

import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { accessSync, closeSync, constants, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { generateCertificates } from '../../certs/generate.js';
import { freePort } from './moto.js';
import { spawnGuarded, stopGuarded } from './guard.js';
import { BIN_DIR, LOG_DIR, REPO_ROOT } from './tools.js';

/** What a test file needs to reach the control plane (serialisable: passed through provide/inject). */
export interface ClusterInfo {
  /** https://127.0.0.1:<port> */
  server: string;
  /** kubeconfig with the admin token (context `e2e`). */
  kubeconfigPath: string;
  /** PEM of the CA that signed the apiserver's serving certificate. */
  caFile: string;
  /** Bearer token of the admin user (group system:masters). */
  token: string;
  /** The run's scratch directory (removed by stop()). */
  dir: string;
  /** Where the processes' logs go (kept after stop() for post-mortems). */
  logDir: string;
  /** http://127.0.0.1:<port> of etcd's client API, to read what the apiserver stored. */
  etcdUrl?: string;
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Written to the command's stdin. */
  input?: string;
  /** Resolve with the result instead of rejecting when the command exits non-zero. */
  allowFailure?: boolean;
  /** Kill the command after this long (default 60 s). */
  timeoutMs?: number;
  /** Working directory (default the repository root). */
  cwd?: string;
}

export interface Cluster extends ClusterInfo {
  kubeConfig: KubeConfig;
  /** Runs .cache/bin/kubectl with this cluster's kubeconfig. */
  kubectl(args: string[], opts?: RunOptions): Promise<CommandResult>;
  /** Runs .cache/bin/helm with this cluster's kubeconfig and helm state kept in the run's dir. */
  helm(args: string[], opts?: RunOptions): Promise<CommandResult>;
}

export interface ControlPlane extends Cluster {
  /** Stops the controller-manager, apiserver and etcd (in that order) and removes the temp dir. */
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Give up waiting for /readyz after this long (default 60 s). */
  timeoutMs?: number;
  /** Also run kube-scheduler, for a suite with a node. */
  scheduler?: boolean;
}

const SERVICE_CIDR = '10.96.0.0/16';
const ISSUER = 'https://kubernetes.default.svc.cluster.local';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs a command; rejects on a non-zero exit unless allowFailure (the error carries stderr). */
export function runCommand(
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  opts: RunOptions = {},
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env, cwd: opts.cwd ?? REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`could not run ${file}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const result = { code: code ?? 128, stdout, stderr };
      if (result.code === 0 || opts.allowFailure) resolve(result);
      else {
        const why = signal ? `was killed by ${signal}` : `exited ${code}`;
        reject(new Error(`${file} ${args.join(' ')} ${why}:\n${stderr || stdout}`));
      }
    });
    // A command that exits without reading its stdin closes the pipe: EPIPE is no failure of ours.
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

/** A Cluster for a control plane started elsewhere (by the global set-up). */
export function connectCluster(info: ClusterInfo): Cluster {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(info.kubeconfigPath);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    KUBECONFIG: info.kubeconfigPath,
    HELM_CONFIG_HOME: join(info.dir, 'helm', 'config'),
    HELM_CACHE_HOME: join(info.dir, 'helm', 'cache'),
    HELM_DATA_HOME: join(info.dir, 'helm', 'data'),
  };
  return {
    ...info,
    kubeConfig,
    kubectl: (args, opts) => runCommand(join(BIN_DIR, 'kubectl'), args, env, opts),
    helm: (args, opts) => runCommand(join(BIN_DIR, 'helm'), args, env, opts),
  };
}

/** GET a path of the apiserver with the admin token; resolves with status and body. */
export function apiGet(info: Pick<ClusterInfo, 'server' | 'caFile' | 'token'>, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${info.server}${path}`,
      { ca: readFileSync(info.caFile), headers: { authorization: `Bearer ${info.token}` }, timeout: 5_000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

interface Proc {
  name: string;
  child: ChildProcess;
  logFile: string;
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

async function stopProc(p: Proc): Promise<void> {
  await stopGuarded(p.child);
}

function tail(file: string, chars = 3_000): string {
  try {
    return readFileSync(file, 'utf8').slice(-chars);
  } catch {
    return '(no log)';
  }
}

function startProc(name: string, binary: string, args: string[], logDir: string): Proc {
  const logFile = join(logDir, `${name}.log`);
  const fd = openSync(logFile, 'w');
  const child = spawnGuarded(binary, args, { out: fd, cwd: logDir });
  closeSync(fd);
  child.on('error', () => undefined); // surfaces as an exit; the caller reports the log
  return { name, child, logFile };
}

async function waitUntil(
  what: string,
  procs: Proc[],
  check: () => Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    const dead = procs.find((p) => exited(p.child));
    if (dead) {
      throw new Error(`${dead.name} exited (code ${dead.child.exitCode}) while waiting for ${what}; log ${dead.logFile}:\n${tail(dead.logFile)}`);
    }
    if (await check().catch(() => false)) return;
    await sleep(200);
  }
  const last = procs[procs.length - 1];
  throw new Error(`${what} not reached within ${timeoutMs} ms${last ? `; ${last.name} log ${last.logFile}:\n${tail(last.logFile)}` : ''}`);
}

/** The Kubernetes release a control plane runs, and where its kube-apiserver and kube-controller-manager are. */
export interface KubeRelease {
  /** `current`: test/setup/kube.sh's; `oldest`: the oldest supported minor, test/setup/kube-oldest.sh's. */
  name: 'current' | 'oldest';
  /** e.g. v1.36.3, as the apiserver reports it. */
  version: string;
  binDir: string;
  /** The set-up script that builds it. */
  setup: string;
}

/**
 * The release the e2e suite runs against: the current one, or with `E2E_KUBERNETES=oldest` the
 * oldest minor docs/compatibility.md claims. etcd and kubectl are the current set-up's either way.
 */
export function kubeRelease(): KubeRelease {
  const oldest = process.env.E2E_KUBERNETES === 'oldest';
  if (!oldest && (process.env.E2E_KUBERNETES ?? 'current') !== 'current') {
    throw new Error(`E2E_KUBERNETES must be "current" or "oldest", not ${JSON.stringify(process.env.E2E_KUBERNETES)}`);
  }
  const setup = oldest ? 'test/setup/kube-oldest.sh' : 'test/setup/kube.sh';
  const version = new RegExp(`^${oldest ? 'KUBE_OLDEST_VERSION' : 'KUBE_VERSION'}=(v\\S+)$`, 'm').exec(readFileSync(join(REPO_ROOT, setup), 'utf8'))?.[1];
  if (version === undefined) throw new Error(`${setup} pins no Kubernetes version`);
  return { name: oldest ? 'oldest' : 'current', version, binDir: oldest ? join(BIN_DIR, 'kube-oldest') : BIN_DIR, setup };
}

function missingBinaries(scheduler: boolean): string[] {
  const release = kubeRelease();
  const names = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kubectl', ...(scheduler ? ['kube-scheduler'] : [])];
  const dirOf = (n: string) => (n === 'kube-apiserver' || n === 'kube-controller-manager' ? release.binDir : BIN_DIR);
  return names.filter((n) => {
    try {
      accessSync(join(dirOf(n), n), constants.X_OK);
      return false;
    } catch {
      return true;
    }
  });
}

/** Keeps the logs of the ten latest control planes, and any younger than an hour (a run in progress). */
function pruneOldLogs(): void {
  const runs = readdirSync(LOG_DIR)
    .filter((n) => n.startsWith('control-plane-'))
    .map((n) => ({ path: join(LOG_DIR, n), mtime: statSync(join(LOG_DIR, n)).mtimeMs }))
    .sort((a, b) => b.mtime - a.mtime);
  const hourAgo = Date.now() - 3_600_000;
  for (const run of runs.slice(10)) {
    if (run.mtime < hourAgo) rmSync(run.path, { recursive: true, force: true });
  }
}

/**
 * Starts etcd, kube-apiserver and kube-controller-manager, waits for the apiserver's /readyz and
 * for the `default` ServiceAccount of namespace `default` (the controller-manager is working).
 */
export async function startControlPlane(opts: StartOptions = {}): Promise<ControlPlane> {
  const missing = missingBinaries(opts.scheduler ?? false);
  if (missing.length > 0) {
    const { name, setup } = kubeRelease();
    throw new Error(`missing in .cache/bin${name === 'oldest' ? ' (and .cache/bin/kube-oldest)' : ''}: ${missing.join(', ')}; run \`npm run test:all\` (or \`bash ${setup}\`)`);
  }
  // The ports are free when chosen and bound a moment later; another process may take one in
  // between. Only that is worth another try.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(opts.timeoutMs ?? 60_000, opts.scheduler ?? false);
    } catch (e) {
      if (attempt >= 3 || !/address already in use/i.test(String(e))) throw e;
    }
  }
}

async function startOnce(timeoutMs: number, scheduler: boolean): Promise<ControlPlane> {
  const dir = mkdtempSync(join(tmpdir(), 'asi-e2e-'));
  mkdirSync(LOG_DIR, { recursive: true });
  pruneOldLogs();
  const logDir = mkdtempSync(join(LOG_DIR, 'control-plane-'));
  const procs: Proc[] = [];
  const stopAll = async () => {
    for (const p of [...procs].reverse()) await stopProc(p);
  };
  try {
    // Certificates and keys.
    const certs = generateCertificates({ ipAddresses: ['127.0.0.1'], dnsNames: ['localhost'] });
    const caFile = join(dir, 'ca.crt');
    writeFileSync(caFile, certs.caCert);
    writeFileSync(join(dir, 'apiserver.crt'), certs.cert);
    writeFileSync(join(dir, 'apiserver.key'), certs.key, { mode: 0o600 });
    const sa = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    });
    writeFileSync(join(dir, 'sa.pub'), sa.publicKey);
    writeFileSync(join(dir, 'sa.key'), sa.privateKey, { mode: 0o600 });
    const token = randomBytes(24).toString('hex');
    // token,user,uid,"groups"
    writeFileSync(join(dir, 'tokens.csv'), `${token},e2e-admin,e2e-admin,"system:masters"\n`, { mode: 0o600 });

    // etcd
    const [etcdPort, peerPort, apiPort, kcmPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    const etcd = startProc(
      'etcd',
      join(BIN_DIR, 'etcd'),
      [
        '--name=e2e',
        `--data-dir=${join(dir, 'etcd')}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=e2e=${peerUrl}`,
        '--listen-metrics-urls=',
        // A throw-away store: durability buys nothing and fsync is the slowest part on small disks.
        '--unsafe-no-fsync',
        '--log-level=warn',
      ],
      logDir,
    );
    procs.push(etcd);
    await waitUntil('etcd health', procs, async () => (await fetch(`${etcdUrl}/health`, { signal: AbortSignal.timeout(2_000) })).ok, timeoutMs);

    // kube-apiserver
    const server = `https://127.0.0.1:${apiPort}`;
    const apiserver = startProc(
      'kube-apiserver',
      join(kubeRelease().binDir, 'kube-apiserver'),
      [
        `--etcd-servers=${etcdUrl}`,
        '--bind-address=127.0.0.1',
        '--advertise-address=127.0.0.1',
        `--secure-port=${apiPort}`,
        `--tls-cert-file=${join(dir, 'apiserver.crt')}`,
        `--tls-private-key-file=${join(dir, 'apiserver.key')}`,
        `--cert-dir=${join(dir, 'apiserver-certs')}`,
        `--client-ca-file=${caFile}`,
        `--token-auth-file=${join(dir, 'tokens.csv')}`,
        '--authorization-mode=RBAC',
        `--service-account-issuer=${ISSUER}`,
        `--service-account-key-file=${join(dir, 'sa.pub')}`,
        `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
        `--service-cluster-ip-range=${SERVICE_CIDR}`,
        // `kubectl logs` reaches a kubelet at its node's address; a node's host name need not resolve.
        '--kubelet-preferred-address-types=InternalIP',
        '--v=1',
      ],
      logDir,
    );
    procs.push(apiserver);
    const info: ClusterInfo = { server, kubeconfigPath: join(dir, 'kubeconfig'), caFile, token, dir, logDir, etcdUrl };
    await waitUntil(
      'kube-apiserver /readyz',
      procs,
      async () => {
        const r = await apiGet(info, '/readyz');
        return r.status === 200;
      },
      timeoutMs,
    );

    writeFileSync(
      info.kubeconfigPath,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'e2e', cluster: { server, 'certificate-authority': caFile } }],
        users: [{ name: 'e2e-admin', user: { token } }],
        contexts: [{ name: 'e2e', context: { cluster: 'e2e', user: 'e2e-admin', namespace: 'default' } }],
        'current-context': 'e2e',
      }),
      { mode: 0o600 },
    );

    // kube-controller-manager: ServiceAccounts, Deployment -> ReplicaSet -> Pod, namespace deletion.
    const kcm = startProc(
      'kube-controller-manager',
      join(kubeRelease().binDir, 'kube-controller-manager'),
      [
        `--kubeconfig=${info.kubeconfigPath}`,
        `--authentication-kubeconfig=${info.kubeconfigPath}`,
        `--authorization-kubeconfig=${info.kubeconfigPath}`,
        `--service-account-private-key-file=${join(dir, 'sa.key')}`,
        `--root-ca-file=${caFile}`,
        '--use-service-account-credentials',
        '--leader-elect=false',
        '--bind-address=127.0.0.1',
        `--secure-port=${kcmPort}`,
        `--cert-dir=${join(dir, 'kcm-certs')}`,
        `--service-cluster-ip-range=${SERVICE_CIDR}`,
        '--v=1',
      ],
      logDir,
    );
    procs.push(kcm);
    await waitUntil(
      'the default ServiceAccount (kube-controller-manager working)',
      procs,
      async () => (await apiGet(info, '/api/v1/namespaces/default/serviceaccounts/default')).status === 200,
      timeoutMs,
    );

    if (scheduler) {
      const schedPort = await freePort();
      procs.push(
        startProc(
          'kube-scheduler',
          join(BIN_DIR, 'kube-scheduler'),
          [
            `--kubeconfig=${info.kubeconfigPath}`,
            `--authentication-kubeconfig=${info.kubeconfigPath}`,
            `--authorization-kubeconfig=${info.kubeconfigPath}`,
            '--leader-elect=false',
            '--bind-address=127.0.0.1',
            `--secure-port=${schedPort}`,
            '--v=1',
          ],
          logDir,
        ),
      );
    }

    const cluster = connectCluster(info);
    return {
      ...cluster,
      stop: async () => {
        await stopAll();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

/**
 * The bytes etcd holds under `key` (e.g. /registry/secrets/<ns>/<name>), read through etcd's own
 * v3 API (its JSON gateway), not through the apiserver: what is at rest. Undefined when absent.
 */
export async function etcdGet(etcdUrl: string, key: string): Promise<Buffer | undefined> {
  const res = await fetch(`${etcdUrl}/v3/kv/range`, {
    method: 'POST',
    body: JSON.stringify({ key: Buffer.from(key).toString('base64') }),
    signal: AbortSignal.timeout(5_000),
  });
  if (!res.ok) throw new Error(`etcd range ${key}: HTTP ${res.status}`);
  const body = (await res.json()) as { kvs?: Array<{ value?: string }> };
  const value = body.kvs?.[0]?.value;
  return value === undefined ? undefined : Buffer.from(value, 'base64');
}

/** A namespace name unique to this run, for tests that must not see each other's objects. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(3).toString('hex')}`;
}

/** Polls `check` until it returns a value other than undefined, or throws after timeoutMs. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const started = Date.now();
  let lastError: unknown;
  while (Date.now() - started < timeoutMs) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (e) {
      lastError = e;
    }
    await sleep(250);
  }
  throw new Error(`${what}: not within ${timeoutMs} ms${lastError ? ` (last error: ${String(lastError)})` : ''}`);
}
