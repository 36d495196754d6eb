// Plays the kubelet for the fetcher init container of a stored (Pending) pod: resolves the
// container's env as the kubelet would (values with `$(VAR)` and `$$` expanded, downward-API fieldRefs), writes a real
// ServiceAccount token (TokenRequest, audience sts.amazonaws.com) where the fetcher will read its
// web identity, and runs the BUILT fetcher bundle with the container's args, a temp dir standing in
// for the secrets volume (`--dir`), and AWS_ENDPOINT_URL pointing at the emulator.

import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { CoreV1Api, type V1Container, type V1Pod } from '@kubernetes/client-node';
import { expandLikeKubelet } from '../../webhook/kubelet-env.js';
import { startCommand } from '../helpers/bundles.js';
import { runCommand, type Cluster, type CommandResult } from '../helpers/cluster.js';

export const STS_AUDIENCE = 'sts.amazonaws.com';

/** The init container our webhook added: the first one whose args are the fetcher's. */
export function fetcherContainer(pod: V1Pod): V1Container {
  const c = pod.spec?.initContainers?.[0];
  if (!c) throw new Error(`pod ${pod.metadata?.name} has no init container`);
  return c;
}

function fieldRef(pod: V1Pod, path: string): string {
  switch (path) {
    case 'metadata.name':
      return pod.metadata?.name ?? '';
    case 'metadata.namespace':
      return pod.metadata?.namespace ?? '';
    case 'metadata.uid':
      return pod.metadata?.uid ?? '';
    case 'spec.serviceAccountName':
      return pod.spec?.serviceAccountName ?? '';
    case 'spec.nodeName':
      return pod.spec?.nodeName ?? '';
    default:
      throw new Error(`the e2e kubelet does not resolve fieldRef ${path}`);
  }
}

/** The container's environment as the kubelet would set it (only what our pods use). */
export function resolveEnv(pod: V1Pod, container: V1Container): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of container.env ?? []) {
    if (e.value !== undefined) env[e.name] = expandLikeKubelet(e.value, env);
    else if (e.valueFrom?.fieldRef) env[e.name] = fieldRef(pod, e.valueFrom.fieldRef.fieldPath);
    else if (!e.valueFrom) env[e.name] = '';
    else throw new Error(`the e2e kubelet does not resolve env ${e.name} (${JSON.stringify(e.valueFrom)})`);
  }
  return env;
}

export interface FetchRun {
  result: CommandResult;
  /** The env the fetcher ran with. */
  env: Record<string, string>;
  /** The ServiceAccount token the fetcher was given. */
  token: string;
  /** Every file written in the stand-in volume, relative path -> { content, mode }. */
  files: Record<string, { content: string; mode: number }>;
  /** The termination message file's content ('' when none was written). */
  termination: string;
}

/** Lists files under dir (recursively) as the app sees them (links followed, the writers' `..` names left out) with content and permission bits. */
export function listFiles(dir: string): Record<string, { content: string; mode: number }> {
  const out: Record<string, { content: string; mode: number }> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (d === dir && name.startsWith('..')) continue;
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else out[relative(dir, p)] = { content: readFileSync(p, 'utf8'), mode: st.mode & 0o777 };
    }
  };
  walk(dir);
  return out;
}

/**
 * Runs the fetcher of `pod` the way its init container would run, with a temp dir as the volume.
 * The pod's own ServiceAccount gets a real token for audience sts.amazonaws.com.
 */
export async function runFetcherLikeKubelet(
  cluster: Cluster,
  pod: V1Pod,
  opts: { bundleDir: string; awsEndpoint: string; extraEnv?: Record<string, string> },
): Promise<FetchRun> {
  const container = fetcherContainer(pod);
  const env = resolveEnv(pod, container);
  const scratch = mkdtempSync(join(tmpdir(), 'asi-kubelet-'));
  // The kubelet creates the emptyDir before any container starts.
  const dir = join(scratch, 'volume');
  mkdirSync(dir);
  // The token the kubelet would project: a real one from TokenRequest for the pod's ServiceAccount.
  const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
  const sa = pod.spec?.serviceAccountName ?? 'default';
  const tr = await core.createNamespacedServiceAccountToken({
    name: sa,
    namespace: pod.metadata!.namespace!,
    body: { spec: { audiences: [STS_AUDIENCE], expirationSeconds: 3600 } },
  });
  const token = tr.status?.token;
  if (!token) throw new Error(`TokenRequest for ${sa} returned no token`);
  const tokenFile = join(scratch, 'token');
  writeFileSync(tokenFile, token);
  if (env.AWS_WEB_IDENTITY_TOKEN_FILE !== undefined) env.AWS_WEB_IDENTITY_TOKEN_FILE = tokenFile;
  const runEnv: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: scratch,
    ...env,
    AWS_ENDPOINT_URL: opts.awsEndpoint,
    SECRET_INJECTOR_TERMINATION_LOG: join(scratch, 'termination-log'),
    ...opts.extraEnv,
  };
  // The image's entrypoint is its executable, /app/fetcher; the pod supplies the args.
  const [command, ...entry] = startCommand(join(opts.bundleDir, 'fetcher'));
  const args = [...entry, ...(container.args ?? []), '--dir', dir];
  const result = await runCommand(command!, args, runEnv, { allowFailure: true, timeoutMs: 60_000 });
  try {
    const files = listFiles(dir);
    const termination = existsSync(runEnv.SECRET_INJECTOR_TERMINATION_LOG!)
      ? readFileSync(runEnv.SECRET_INJECTOR_TERMINATION_LOG!, 'utf8')
      : '';
    return { result, env: runEnv, token, files, termination };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}
