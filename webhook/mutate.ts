// The mutation, a pure function: (pod, what it asked for, webhook configuration) -> the pod with
// the secrets volume, the fetcher init container and the mounts, on a copy. No I/O, no clock.
//
// Stages here: `checkPod` (is the object a pod we can work on), `validateTarget` (can this pod
// take the injection without becoming invalid) and `mutate` (render). review.ts runs them in
// order and turns their problems into one denial.

import type { V1Container, V1EnvVar, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import {
  CA_BUNDLE_DIR,
  CA_BUNDLE_ENV,
  CA_BUNDLE_FILE,
  FETCH_ARGS,
  NODE_CREDENTIALS_ENV,
  REFRESH_ARGS,
  REFRESHER_ENV,
  POD_NAME_ENV,
  POD_NAMESPACE_ENV,
  SIGNAL_TARGET_ENV,
  SPEC_ENV,
  SPEC_VERSION,
  serialiseSpec,
  type FetchSpec,
} from '../fetcher/spec.js';
import { referenceTarget } from '../fetcher/reference.js';
import { MAX_ANNOTATIONS_BYTES, PREFIX, STATUS_ANNOTATION, STATUS_INJECTED, type InjectionRequest } from './annotations.js';
import { kubeletLiteral } from './kubelet-env.js';
import { problem, quote, type Problem } from './problems.js';
import { cpuLimits, type CpuLimits } from './cpu-limit.js';
import { quantityValue } from './quantity.js';
import type { MutationConfig } from './types.js';

/** The volume's name in the original AWS sample; kept so its users see what they know. */
export const VOLUME_NAME = 'secret-vol';
export const INIT_CONTAINER_NAME = 'secret-fetcher';
/** The native sidecar that keeps the files current for pods with `refresh`. */
export const REFRESHER_NAME = 'secret-refresher';
/** The fetcher's CA bundle volume (webhook setting FETCHER_CA_BUNDLE_CONFIGMAP). */
export const CA_VOLUME_NAME = 'secret-fetcher-ca';

/** The credential variables of IRSA and EKS Pod Identity, copied from the app into the fetcher. */
export const IDENTITY_ENV = [
  'AWS_ROLE_ARN',
  'AWS_WEB_IDENTITY_TOKEN_FILE',
  'AWS_REGION',
  'AWS_DEFAULT_REGION',
  'AWS_STS_REGIONAL_ENDPOINTS',
  'AWS_CONTAINER_CREDENTIALS_FULL_URI',
  'AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE',
] as const;
const TOKEN_FILE_ENV = ['AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE'];
const CREDENTIAL_ENV = ['AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_CONTAINER_CREDENTIALS_FULL_URI', 'AWS_ROLE_ARN'];

/** A container as it arrives: the fields we read are typed, everything else is kept untouched. */
export type Container = V1Container & Record<string, unknown>;

/** A pod as it arrives, narrowed by checkPod to the fields the mutation reads. */
export interface Pod {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; generateName?: string; namespace?: string; annotations?: Record<string, string> } & Record<string, unknown>;
  spec: {
    containers: Container[];
    initContainers?: Container[] | null;
    ephemeralContainers?: unknown;
    volumes?: Array<V1Volume & Record<string, unknown>> | null;
    os?: { name?: string };
  } & Record<string, unknown>;
  [key: string]: unknown;
}

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const list = <T>(v: T[] | null | undefined): T[] => v ?? [];

function checkList(v: unknown, where: string, field: string, problems: Problem[]): v is Obj[] | null | undefined {
  if (v === undefined || v === null) return true;
  if (!Array.isArray(v) || !v.every((x) => isObject(x) && typeof x[field] === 'string')) {
    problems.push(problem('WEBHOOK_INVALID_POD', where, `must be a list of objects with a string "${field}"`));
    return false;
  }
  return true;
}

/** Stage validate (shape): the object has the pod fields the mutation reads, of the right types. */
export function checkPod(obj: unknown): Problem[] {
  const problems: Problem[] = [];
  if (!isObject(obj)) return [problem('WEBHOOK_INVALID_POD', 'object', 'the review carries no pod object')];
  if (obj.metadata !== undefined && !isObject(obj.metadata)) problems.push(problem('WEBHOOK_INVALID_POD', 'metadata', 'must be an object'));
  const spec = obj.spec;
  if (!isObject(spec)) return [...problems, problem('WEBHOOK_INVALID_POD', 'spec', 'must be an object')];
  if (!Array.isArray(spec.containers) || spec.containers.length === 0) {
    problems.push(problem('WEBHOOK_INVALID_POD', 'spec.containers', 'must list at least one container'));
  }
  for (const field of ['containers', 'initContainers'] as const) {
    const cs = spec[field];
    if (!checkList(cs, `spec.${field}`, 'name', problems) || !cs) continue;
    cs.forEach((c, i) => {
      checkList(c.volumeMounts, `spec.${field}[${i}].volumeMounts`, 'mountPath', problems);
      checkList(c.env, `spec.${field}[${i}].env`, 'name', problems);
    });
  }
  checkList(spec.volumes, 'spec.volumes', 'name', problems);
  if (spec.os !== undefined && spec.os !== null && !isObject(spec.os)) problems.push(problem('WEBHOOK_INVALID_POD', 'spec.os', 'must be an object'));
  return problems;
}

/** A mount path without its trailing slashes (`/` stays `/`), as the kubelet compares them. */
export const trimSlash = (p: string): string => (p.length > 1 && p.endsWith('/') ? p.replace(/\/+$/, '') : p);

export interface Targets {
  app: Container[];
  init: Container[];
}

function targets(pod: Pod, request: InjectionRequest): Targets {
  const app = pod.spec.containers;
  const init = list(pod.spec.initContainers);
  if (request.containers === undefined) return { app, init: [] };
  const wanted = new Set(request.containers);
  return { app: app.filter((c) => wanted.has(c.name)), init: init.filter((c) => wanted.has(c.name)) };
}

export interface Identity {
  env: V1EnvVar[];
  mounts: V1VolumeMount[];
  /** The container they came from, for messages. */
  from?: string;
}

/**
 * The pod's AWS identity as a container sees it: whichever of the IRSA / Pod Identity variables
 * the first target container (then any app container) carries, with the mounts of the token
 * files they point at. Taken from one container so the fetcher never mixes two identities. The
 * variables and mounts are the container's own objects (see mutate: nothing is modified).
 */
export function findIdentity(pod: Pod, request: InjectionRequest): Identity {
  const t = targets(pod, request);
  const candidates = [...t.app, ...t.init, ...pod.spec.containers];
  const vars = (c: Container) => list(c.env).filter((e) => (IDENTITY_ENV as readonly string[]).includes(e.name));
  const source =
    candidates.find((c) => vars(c).some((e) => CREDENTIAL_ENV.includes(e.name))) ?? candidates.find((c) => vars(c).length > 0);
  if (source === undefined) return { env: [], mounts: [] };
  const env = vars(source);
  const mounts: V1VolumeMount[] = [];
  for (const e of env) {
    if (!TOKEN_FILE_ENV.includes(e.name) || typeof e.value !== 'string') continue;
    const file = e.value;
    // The mount whose path is the deepest directory holding the token file, or the file itself
    // (a single-file mount with subPath).
    const holder = list(source.volumeMounts)
      .filter((m) => file === trimSlash(m.mountPath) || file.startsWith(`${trimSlash(m.mountPath)}/`))
      .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
    if (holder && !mounts.some((m) => m.mountPath === holder.mountPath)) mounts.push(holder);
  }
  return { env, mounts, from: source.name };
}

/** A mount path the pod does not use, for the fix a denial names. */
function freePath(pod: Pod): string {
  const taken = new Set([...pod.spec.containers, ...list(pod.spec.initContainers)].flatMap((c) => list(c.volumeMounts).map((m) => trimSlash(m.mountPath))));
  let path = FREE_PATH;
  for (let i = 2; taken.has(path); i++) path = `${FREE_PATH}-${i}`;
  return path;
}

/** The path a denial offers when the mount path cannot hold the secrets. */
export const FREE_PATH = '/var/run/app-secrets';

/** The app's own emptyDir at the mount path, which the secrets then share (a hardened pod's /tmp). */
export interface SharedVolume {
  volume: V1Volume & Record<string, unknown>;
  /** The subPath the target containers mount it with, which the fetcher then mounts too. */
  subPath?: string;
}

/**
 * Whether the target containers already mount a volume at the mount path, and if so whether the
 * secrets can go into it: it must be one emptyDir, mounted the same way in every target container
 * that mounts it, and seen by no container left out of `containers`. A hardened pod
 * (readOnlyRootFilesystem and an emptyDir at /tmp) is the usual case. Undefined: the path is free
 * in every target container, and the secrets get a volume of their own.
 */
export function existingVolume(pod: Pod, t: Targets, mountPath: string): SharedVolume | { problem: Problem } | undefined {
  const mounts: Array<{ c: Container; m: V1VolumeMount }> = [];
  for (const c of [...t.init, ...t.app]) for (const m of list(c.volumeMounts)) if (trimSlash(m.mountPath) === mountPath) mounts.push({ c, m });
  if (mounts.length === 0) return undefined;
  const key = `${PREFIX}mount-path`;
  const fix = `set ${key} to a free path such as ${freePath(pod)}`;
  const clash = (message: string) => ({ problem: problem('WEBHOOK_MOUNT_CLASH', key, message) });
  const [first] = mounts;
  const { c, m } = first!;
  const other = mounts.find((x) => x.m.name !== m.name || (x.m.subPath || undefined) !== (m.subPath || undefined));
  if (other !== undefined) {
    return clash(
      `${mountPath} is a mount of volume ${quote(m.name)} in container ${quote(c.name)} but of ${other.m.name === m.name ? `another subPath of it` : `volume ${quote(other.m.name)}`} in container ${quote(other.c.name)}; the secrets can go into one emptyDir only: mount the same one in both, or ${fix}`,
    );
  }
  const volume = list(pod.spec.volumes).find((v) => v.name === m.name);
  if (volume === undefined || !isObject(volume.emptyDir)) {
    const kind = volume === undefined ? 'not in spec.volumes' : (Object.keys(volume).find((k) => k !== 'name') ?? 'no source');
    return clash(`${mountPath} is already a mount of volume ${quote(m.name)} (${kind}) in container ${quote(c.name)}; the secrets can share only an emptyDir there: ${fix}`);
  }
  if (mounts.some((x) => typeof x.m.subPathExpr === 'string' && x.m.subPathExpr !== '')) {
    return clash(`${mountPath} mounts volume ${quote(m.name)} with subPathExpr in container ${quote(c.name)}, which the fetcher cannot expand; use subPath, or ${fix}`);
  }
  const targeted = new Set<Container>([...t.init, ...t.app]);
  const outsider = [...pod.spec.containers, ...list(pod.spec.initContainers)].find((x) => !targeted.has(x) && list(x.volumeMounts).some((vm) => vm.name === m.name));
  if (outsider !== undefined) {
    return clash(
      `${mountPath} is volume ${quote(m.name)}, which container ${quote(outsider.name)} mounts too though ${PREFIX}containers leaves it out: it would see the secrets; add it to ${PREFIX}containers, or ${fix}`,
    );
  }
  return m.subPath !== undefined && m.subPath !== '' ? { volume, subPath: m.subPath } : { volume };
}

/**
 * Stage validate (fit): the injection must not turn a valid pod into an invalid one. It also runs
 * after the parse stage refused some annotations (`refused`, their keys), so one denial names
 * every problem; the checks that depend on a refused value are skipped rather than run on its
 * default, which would report problems the pod does not have.
 */
export function validateTarget(
  pod: Pod,
  request: InjectionRequest,
  refused: ReadonlySet<string> = new Set(),
  identity: Identity = findIdentity(pod, request),
): { problems: Problem[]; warnings: string[] } {
  const problems: Problem[] = [];
  const warnings: string[] = [];
  const containersKey = `${PREFIX}containers`;
  const mountKey = `${PREFIX}mount-path`;
  const containersKnown = !refused.has(containersKey);
  const mountKnown = containersKnown && !refused.has(mountKey);
  if (pod.spec.os?.name === 'windows') {
    problems.push(problem('WEBHOOK_UNSUPPORTED_POD', 'spec.os.name', 'windows pods cannot run the fetcher (a Linux container); remove the secret annotations'));
  }
  const app = pod.spec.containers.map((c) => c.name);
  const init = list(pod.spec.initContainers).map((c) => c.name);
  for (const name of request.containers ?? []) {
    if (!app.includes(name) && !init.includes(name)) {
      problems.push(
        problem('WEBHOOK_UNKNOWN_CONTAINER', containersKey, `names container ${quote(name)}, which the pod does not have (containers: ${app.join(', ')}${init.length ? `; init containers: ${init.join(', ')}` : ''})`),
      );
    }
  }
  const t = targets(pod, request);
  if (mountKnown) {
    const existing = existingVolume(pod, t, request.mountPath);
    if (existing !== undefined && 'problem' in existing) problems.push(existing.problem);
    else if (existing !== undefined && existing.volume.emptyDir?.medium !== 'Memory') {
      warnings.push(
        `the secrets go into volume ${quote(existing.volume.name, 40)}, the app's emptyDir at ${request.mountPath}, which is on the node's disk: they stay there until the pod is deleted; set medium: Memory on that emptyDir, or ${mountKey} to a free path`,
      );
    }
  }
  for (const c of mountKnown ? [...t.init, ...t.app] : []) {
    // Inside a read-only mount the runtime cannot make the mount point, and the container fails
    // to start. Secret, configMap, downwardAPI and projected volumes are read-only whatever the
    // mount says (the service account token's kube-api-access is one).
    const within = list(c.volumeMounts).find((m) => {
      if (!request.mountPath.startsWith(`${trimSlash(m.mountPath)}/`)) return false;
      const v = list(pod.spec.volumes).find((x) => x.name === m.name);
      return m.readOnly === true || (v !== undefined && (v.secret || v.configMap || v.downwardAPI || v.projected) !== undefined);
    });
    if (within) {
      problems.push(
        problem('WEBHOOK_MOUNT_CLASH', mountKey, `${request.mountPath} is inside ${within.mountPath}, a read-only mount of volume ${quote(within.name)} in container ${quote(c.name)}, where no volume can be mounted; set ${mountKey} to a path outside it`),
      );
    }
    // The apiserver refuses a mount path that is also a raw block device's path in the container.
    const device = Array.isArray(c.volumeDevices) ? c.volumeDevices.find((d) => typeof d?.devicePath === 'string' && trimSlash(d.devicePath) === request.mountPath) : undefined;
    if (device) {
      problems.push(
        problem('WEBHOOK_MOUNT_CLASH', mountKey, `${request.mountPath} is the device path of volume ${quote(device.name)} in container ${quote(c.name)}; set ${mountKey} to a free path`),
      );
    }
  }
  const clash = !mountKnown ? undefined : identity.mounts.find((m) => trimSlash(m.mountPath) === request.mountPath || request.mountPath.startsWith(`${trimSlash(m.mountPath)}/`));
  if (clash) {
    problems.push(problem('WEBHOOK_MOUNT_CLASH', mountKey, `${request.mountPath} is ${trimSlash(clash.mountPath) === request.mountPath ? '' : `inside ${clash.mountPath}, `}where the AWS token volume ${quote(clash.name)} is mounted; set ${mountKey} to another path`));
  }
  // The status annotation must still fit, or the apiserver would refuse the pod after our patch.
  const annotations = { ...pod.metadata?.annotations, [STATUS_ANNOTATION]: STATUS_INJECTED };
  const bytes = Object.entries(annotations).reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v), 0);
  if (bytes > MAX_ANNOTATIONS_BYTES) {
    problems.push(
      problem('WEBHOOK_UNSUPPORTED_POD', 'metadata.annotations', `total ${bytes} bytes with ${STATUS_ANNOTATION}: ${STATUS_INJECTED} added, over the apiserver's limit of ${MAX_ANNOTATIONS_BYTES}; shorten the pod's annotations`),
    );
  }
  if (containersKnown && t.app.length === 0 && t.init.length === 0 && problems.length === 0) {
    problems.push(problem('WEBHOOK_UNKNOWN_CONTAINER', containersKey, 'selects no container'));
  }
  const regionless = request.items.filter((i) => {
    const r = referenceTarget(i.ref);
    return r !== undefined && r.region === undefined;
  });
  const envRegion = identity.env.some((e) => e.name === 'AWS_REGION' || e.name === 'AWS_DEFAULT_REGION');
  if (regionless.length > 0 && request.region === undefined && !refused.has(`${PREFIX}region`) && !envRegion) {
    // envFrom is not copied: it would hand the fetcher every key of a ConfigMap or Secret, the
    // app's own secrets and AWS endpoint or credential settings included.
    const envFrom = [...t.app, ...t.init].find((c) => Array.isArray(c.envFrom) && c.envFrom.length > 0);
    warnings.push(
      envFrom !== undefined
        ? `secret ${quote(regionless[0]!.ref, 60)} has no region; AWS_REGION from envFrom (container ${quote(envFrom.name, 40)}) is not passed to the fetcher: set ${PREFIX}region`
        : `secret ${quote(regionless[0]!.ref)} is a name without a region and the pod sets none (${PREFIX}region); the fetcher will need AWS_REGION from its environment`,
    );
  }
  return { problems, warnings };
}

/**
 * Stage validate (resources): a pod with pod-level resources (`spec.resources`) must leave room for
 * the fetcher, or the apiserver refuses the injected pod: no container may ask for more than the
 * pod's request or be limited above the pod's limit. The fetcher keeps the resources the webhook
 * is configured with (it needs them whatever the pod's budget), so a pod that is short is refused
 * here, naming what to raise.
 */
export function validateResources(pod: Pod, config: MutationConfig): Problem[] {
  const own = pod.spec.resources;
  if (!isObject(own)) return [];
  const problems: Problem[] = [];
  const fetcher = fetcherResources(config, cpuLimits(pod, config));
  for (const kind of ['requests', 'limits'] as const) {
    const podSide = own[kind];
    if (!isObject(podSide)) continue;
    for (const [resource, wanted] of Object.entries(fetcher[kind])) {
      const have = podSide[resource];
      const haveValue = typeof have === 'string' ? quantityValue(have) : typeof have === 'number' ? have : undefined;
      const wantedValue = quantityValue(wanted);
      if (haveValue === undefined || wantedValue === undefined || haveValue >= wantedValue) continue;
      problems.push(
        problem(
          'WEBHOOK_UNSUPPORTED_POD',
          `spec.resources.${kind}.${resource}`,
          `${quote(have)} is below the fetcher's ${resource} ${kind === 'requests' ? 'request' : 'limit'} of ${wanted}, which the apiserver would refuse; raise it to at least ${wanted} (the fetcher runs before the app containers, not beside them)`,
        ),
      );
    }
  }
  return problems;
}

function uniqueName(base: string, taken: ReadonlySet<string>): string {
  if (!taken.has(base)) return base;
  for (let i = 2; ; i++) if (!taken.has(`${base}-${i}`)) return `${base}-${i}`;
}

/**
 * Where the fetcher mounts the secrets volume, whatever the app's mount-path: at the app's path
 * the volume could hide the fetcher's program, its Node.js or its TLS roots. Nothing of its image
 * lives here.
 */
export const FETCHER_DIR = '/aws-secret-injector';

/** The fetcher's input: references and options only, never values. */
export function buildSpec(request: InjectionRequest, config: MutationConfig): FetchSpec {
  const spec: FetchSpec = { version: SPEC_VERSION, dir: FETCHER_DIR, mode: request.mode, items: request.items };
  if (request.region !== undefined) spec.region = request.region;
  if (request.roleArn !== undefined) spec.roleArn = request.roleArn;
  if (request.failoverRegion !== undefined) spec.failoverRegion = request.failoverRegion;
  if (config.fetchTimeouts !== undefined) spec.timeouts = config.fetchTimeouts;
  if (request.refreshSeconds !== undefined && polled(request)) {
    spec.refresh = { intervalSeconds: request.refreshSeconds };
    if (request.refreshSignal !== undefined) spec.refresh.signal = request.refreshSignal;
  }
  return spec;
}

/** Whether a refresh has anything to poll: entries pinned to a versionId never change. */
const polled = (request: InjectionRequest): boolean => request.items.some((i) => i.versionId === undefined);

/**
 * Stage validate (cluster): `refresh` needs native sidecars. Without them the apiserver drops an
 * init container's restartPolicy and the sidecar would hold the pod in Init forever; a warning
 * instead of a refusal would reach only the controller that created the pod (a ReplicaSet, a
 * Job), so the pod would silently get files that go stale at the next rotation.
 */
export function validateRefresh(request: InjectionRequest, config: MutationConfig): Problem[] {
  if (request.refreshSeconds === undefined || config.nativeSidecars) return [];
  return [
    problem(
      'WEBHOOK_UNSUPPORTED_POD',
      `${PREFIX}refresh`,
      'needs native sidecars (Kubernetes 1.29+), which this cluster does not run (webhook setting NATIVE_SIDECARS=false); remove the annotation to have the files written once at start, or upgrade the cluster',
    ),
  ];
}

/** The uid and gid a container runs as, where the pod states them (the container's own, else the pod's). */
function statedIds(pod: Pod, c: Container): { uid?: number; gid?: number } {
  const own = isObject(c.securityContext) ? c.securityContext : {};
  const podCtx = isObject(pod.spec.securityContext) ? pod.spec.securityContext : {};
  const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : undefined);
  const ids: { uid?: number; gid?: number } = {};
  const uid = num(own.runAsUser) ?? num(podCtx.runAsUser);
  const gid = num(own.runAsGroup) ?? num(podCtx.runAsGroup);
  if (uid !== undefined) ids.uid = uid;
  if (gid !== undefined) ids.gid = gid;
  return ids;
}

/**
 * Stage validate (signal): `signal-on-refresh` needs an app container that gets the volume and
 * whose uid and gid the pod states (not root): the fetcher and the refresher run as them, so
 * reading the app's /proc entries and signalling it need no capability. A pod that keeps its
 * process namespace unshared on purpose, or uses the node's, is refused rather than changed.
 */
export function validateSignal(pod: Pod, request: InjectionRequest, refused: ReadonlySet<string> = new Set()): Problem[] {
  const s = request.refreshSignal;
  if (s === undefined) return [];
  const subject = `${PREFIX}signal-on-refresh`;
  const problems: Problem[] = [];
  const app = pod.spec.containers.find((c) => c.name === s.container);
  if (app === undefined) {
    const init = list(pod.spec.initContainers).some((c) => c.name === s.container);
    return [
      problem(
        'WEBHOOK_UNKNOWN_CONTAINER',
        subject,
        `names container ${quote(s.container)}, which ${init ? 'is an init container; name an app container' : `the pod does not have (containers: ${pod.spec.containers.map((c) => c.name).join(', ')})`}`,
      ),
    ];
  }
  if (!refused.has(`${PREFIX}containers`) && request.containers !== undefined && !request.containers.includes(s.container)) {
    problems.push(problem('WEBHOOK_CONFLICTING_ANNOTATIONS', subject, `names container ${quote(s.container)}, which ${PREFIX}containers leaves without the secrets volume`));
  }
  const { uid, gid } = statedIds(pod, app);
  if (uid === undefined || gid === undefined) {
    problems.push(
      problem(
        'WEBHOOK_UNSUPPORTED_POD',
        subject,
        `the refresher signals container ${quote(s.container)} as its own uid and gid, with no added capability, so the pod must state them: set securityContext.runAsUser and runAsGroup on the container or the pod (${uid === undefined ? 'runAsUser' : 'runAsGroup'} is not set)`,
      ),
    );
  } else if (uid === 0) {
    problems.push(problem('WEBHOOK_UNSUPPORTED_POD', subject, `container ${quote(s.container)} runs as root (runAsUser 0), and the fetcher and refresher never do: run the app as a non-root uid`));
  }
  if (pod.spec.shareProcessNamespace === false) {
    problems.push(problem('WEBHOOK_CONFLICTING_ANNOTATIONS', subject, 'needs the pod\'s process namespace shared, and the pod sets spec.shareProcessNamespace: false'));
  }
  if (pod.spec.hostPID === true) {
    problems.push(problem('WEBHOOK_UNSUPPORTED_POD', subject, 'needs the pod\'s own shared process namespace, and the pod uses the node\'s (spec.hostPID: true)'));
  }
  return problems;
}

/** The fetcher's network settings and CA bundle: env and mounts beside the identity's. */
function networkOf(config: MutationConfig, caVolume: string | undefined): { env: V1EnvVar[]; mounts: V1VolumeMount[] } {
  const env: V1EnvVar[] = (config.fetcherNetworkEnv ?? []).map((e) => ({ name: e.name, value: kubeletLiteral(e.value) }));
  const mounts: V1VolumeMount[] = [];
  if (config.fetcherCaBundle !== undefined && caVolume !== undefined) {
    env.push({ name: CA_BUNDLE_ENV, value: CA_BUNDLE_FILE });
    mounts.push({ name: caVolume, mountPath: CA_BUNDLE_DIR, readOnly: true });
  }
  return { env, mounts };
}

/** The configured resources with the CPU limit chosen for this pod (none: no CPU limit). */
function withCpuLimit(configured: MutationConfig['fetcherResources'], cpu: string | undefined) {
  const limits: Record<string, string> = cpu === undefined ? {} : { cpu };
  for (const k in configured.limits) if (k !== 'cpu') limits[k] = configured.limits[k]!;
  return { requests: { ...configured.requests }, limits };
}

const fetcherResources = (config: MutationConfig, cpu: CpuLimits) => withCpuLimit(config.fetcherResources, cpu.fetcher);

export function buildInitContainer(
  name: string,
  volume: string,
  spec: FetchSpec,
  identity: Identity,
  config: MutationConfig,
  cpu: CpuLimits,
  caVolume?: string,
): V1Container {
  const network = networkOf(config, caVolume);
  return {
    name,
    image: config.fetcherImage,
    imagePullPolicy: config.fetcherImagePullPolicy,
    args: [...FETCH_ARGS],
    env: [
      // Escaped: a `$(...)` in a key would otherwise be expanded by the kubelet.
      { name: SPEC_ENV, value: kubeletLiteral(serialiseSpec(spec)) },
      { name: POD_NAME_ENV, valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } },
      { name: POD_NAMESPACE_ENV, valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } } },
      ...identity.env,
      ...network.env,
      // Visible in the pod: this fetcher may fall back to the node's credentials.
      ...(config.nodeCredentials === 'allow' ? [{ name: NODE_CREDENTIALS_ENV, value: 'allow' }] : []),
    ],
    resources: fetcherResources(config, cpu),
    // Pod Security "restricted" asks for every one of these; the fetcher needs none of the rest.
    securityContext: {
      runAsNonRoot: true,
      runAsUser: config.fetcherUid,
      runAsGroup: config.fetcherUid,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    // Spelled out (these are the apiserver's defaults) so the pod reads back exactly as patched.
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'FallbackToLogsOnError',
    volumeMounts: [{ name: volume, mountPath: spec.dir }, ...identity.mounts, ...network.mounts],
  };
}

/**
 * The refresh sidecar: the fetcher's container (image, environment and token mounts, security
 * context) kept running by the kubelet (`restartPolicy: Always`), with its own resources.
 */
export function buildRefresher(
  name: string,
  volume: string,
  spec: FetchSpec,
  identity: Identity,
  config: MutationConfig,
  cpu: CpuLimits,
  caVolume?: string,
): V1Container {
  const base = buildInitContainer(name, volume, spec, identity, config, cpu, caVolume);
  return {
    ...base,
    args: [...REFRESH_ARGS],
    env: [...(base.env ?? []), ...Object.entries(REFRESHER_ENV).map(([name, value]) => ({ name, value }))],
    resources: withCpuLimit(config.refresherResources, cpu.refresher),
    restartPolicy: 'Always',
  };
}

export interface MutationResult {
  pod: Pod;
  warnings: string[];
  /** The fetcher's input as serialised into the init container. */
  spec: FetchSpec;
}

/**
 * Stage render. The caller has run validateTarget. The pod is not touched: the result is a copy
 * on write. The pod, its metadata, annotations and spec, and the lists that grow (containers,
 * initContainers, volumes) are new objects; a container is copied when it gets the mount;
 * everything else is the pod's own object, shared. So the diff against the pod (review.ts) skips
 * what did not change by identity, and a review costs what it adds, not what the pod holds.
 * Neither the pod nor the result may be modified afterwards: to change a container, copy it.
 * Arrays only grow: the init container goes first, everything else is appended.
 */
export function mutate(pod: Pod, request: InjectionRequest, config: MutationConfig, identity: Identity = findIdentity(pod, request)): MutationResult {
  const spec = buildSpec(request, config);
  const signal = spec.refresh?.signal;
  const signalled = signal === undefined ? undefined : pod.spec.containers.find((c) => c.name === signal.container);
  const runAs = signalled === undefined ? undefined : statedIds(pod, signalled);

  const volumes = list(pod.spec.volumes);
  const volumeNames = new Set(volumes.map((v) => v.name));
  const t = targets(pod, request);
  // validateTarget has refused every other kind of volume at the mount path.
  const found = existingVolume(pod, t, request.mountPath);
  const shared = found !== undefined && 'volume' in found ? found : undefined;
  const volume = shared?.volume.name ?? uniqueName(VOLUME_NAME, volumeNames);
  volumeNames.add(volume);
  const ca = config.fetcherCaBundle;
  const caVolume = ca === undefined ? undefined : uniqueName(CA_VOLUME_NAME, volumeNames);
  const ephemeral = Array.isArray(pod.spec.ephemeralContainers) ? (pod.spec.ephemeralContainers as Obj[]) : [];
  const names = new Set([
    ...pod.spec.containers.map((c) => c.name),
    ...list(pod.spec.initContainers).map((c) => c.name),
    ...ephemeral.map((c) => String(c.name)),
  ]);
  const name = uniqueName(INIT_CONTAINER_NAME, names);
  const warnings: string[] = [];
  // With a refresh signal, both run as the app's uid and gid: the refresher may then read the
  // app's /proc entries and signal it, and every file and directory has one owner throughout.
  // In the app's own emptyDir the fetcher sees what the app sees: the same subPath of it.
  const asApp = (c: V1Container): Container => {
    const own = runAs?.uid === undefined || runAs.gid === undefined ? c : { ...c, securityContext: { ...c.securityContext, runAsUser: runAs.uid, runAsGroup: runAs.gid } };
    return (shared?.subPath === undefined ? own : { ...own, volumeMounts: list(own.volumeMounts).map((m) => (m.name === volume ? { ...m, subPath: shared.subPath } : m)) }) as Container;
  };
  const cpu = cpuLimits(pod, config);
  const containers = [asApp(buildInitContainer(name, volume, spec, identity, config, cpu, caVolume))];
  if (spec.refresh !== undefined) {
    const refresher = uniqueName(REFRESHER_NAME, new Set([...names, name]));
    containers.push(asApp(buildRefresher(refresher, volume, spec, identity, config, cpu, caVolume)));
  } else if (request.refreshSeconds !== undefined) {
    warnings.push(`${PREFIX}refresh ignored: every secret is pinned to a versionId, so there is nothing to refresh`);
  }

  // Containers that already mount the app's emptyDir at the mount path keep their mount as it is.
  const mounted = new Set<Container>([...t.init, ...t.app].filter((c) => !list(c.volumeMounts).some((m) => m.name === volume && trimSlash(m.mountPath) === request.mountPath)));
  // Read-write, as the original sample had it: the default path is /tmp, where apps write their
  // own temporary files. The secret files themselves are read-only (mode 0444 by default).
  const mount: V1VolumeMount = shared?.subPath === undefined ? { name: volume, mountPath: request.mountPath } : { name: volume, mountPath: request.mountPath, subPath: shared.subPath };
  const withVolume = (c: Container): Container => {
    const out = mounted.has(c) ? { ...c, volumeMounts: [...list(c.volumeMounts), mount] } : c;
    // The mark the refresher finds the signalled container's processes by.
    return c === signalled ? { ...out, env: [...list(c.env), { name: SIGNAL_TARGET_ENV, value: c.name }] } : out;
  };
  const emptyDir = config.volumeSizeLimit === undefined ? { medium: 'Memory' } : { medium: 'Memory', sizeLimit: config.volumeSizeLimit };
  const added: Array<V1Volume & Record<string, unknown>> = shared === undefined ? [{ name: volume, emptyDir }] : [];
  if (ca !== undefined && caVolume !== undefined) {
    // The one key, under a fixed name; not optional: a pod without the ConfigMap waits with an
    // event naming it rather than fetching without the CA it was told to trust.
    added.push({ name: caVolume, configMap: { name: ca.configMap, items: [{ key: ca.key, path: 'ca.crt' }], defaultMode: 0o444 } });
  }

  // Keys a pod lacks are added in this order (volumes, then initContainers; metadata last), so
  // the patch lists its operations, and the patched pod its keys, the same way for every pod.
  // The refresher comes right after the fetcher: the kubelet starts it once the first complete
  // set is written, before the pod's own init containers.
  const out: Pod = {
    ...pod,
    spec: {
      ...pod.spec,
      containers: pod.spec.containers.map(withVolume),
      volumes: [...volumes, ...added],
      initContainers: [...containers, ...list(pod.spec.initContainers).map(withVolume)],
      ...(signalled !== undefined && spec.refresh !== undefined && { shareProcessNamespace: true }),
    },
    metadata: { ...pod.metadata, annotations: { ...pod.metadata?.annotations, [STATUS_ANNOTATION]: STATUS_INJECTED } },
  };
  // The app's own emptyDir keeps the sizeLimit it has: the configured one is not applied to it.
  return { pod: out, warnings: shared === undefined ? [...warnings, ...sizeLimitWarnings(t, request.mountPath, config)] : warnings, spec };
}

/** Where programs write temporary files unless told otherwise. */
const TEMP_DIRS = ['/tmp', '/var/tmp'];

/**
 * A sizeLimit on a volume that is also a temporary directory of the app counts the app's own
 * files against it, and the kubelet evicts the pod past it: say so where that is the case.
 */
function sizeLimitWarnings(t: Targets, mountPath: string, config: MutationConfig): string[] {
  if (config.volumeSizeLimit === undefined) return [];
  const tmpdirs = [...t.app, ...t.init].flatMap((c) => list(c.env).filter((e) => e.name === 'TMPDIR' && typeof e.value === 'string').map((e) => trimSlash(e.value!)));
  const temp = [...TEMP_DIRS, ...tmpdirs].find((d) => d === mountPath || d.startsWith(`${mountPath}/`));
  if (temp === undefined) return [];
  return [
    `the secrets volume at ${mountPath} holds the app's temporary files (${temp}), which count against its sizeLimit of ${config.volumeSizeLimit}: past it the pod is evicted; set ${PREFIX}mount-path to a path of its own`,
  ];
}
