// Stage validate (fetcher): what the fetcher of this pod would read and reach must be safe and must
// exist. Its token mounts (copied from the app) must not land on the fetcher's own mounts nor bring
// a node path into it; its endpoint overrides must be https:// unless the emulator escape is on;
// with FIPS on, every region it calls must have FIPS endpoints for the services it calls there.
// Each refusal names why, at admission, instead of a pod the apiserver refuses after our patch or
// a fetch that fails at the pod's start.

import { CA_BUNDLE_DIR } from '../fetcher/spec.js';
import { referenceTarget } from '../fetcher/reference.js';
import { PREFIX, type InjectionRequest } from './annotations.js';
import { FETCHER_DIR, findIdentity, trimSlash, type Identity, type Pod } from './mutate.js';
import { problem, quote, type Problem } from './problems.js';
import type { MutationConfig } from './types.js';

/**
 * Regions with FIPS 140 endpoints, per service (AWS's endpoint data, as botocore ships it): the
 * SDK builds `<service>-fips.<region>.amazonaws.com` for any region, and outside these the name
 * does not resolve.
 */
export const FIPS_REGIONS: Readonly<Record<'secretsmanager' | 'ssm' | 'sts', ReadonlySet<string>>> = {
  secretsmanager: new Set(['us-east-1', 'us-east-2', 'us-west-1', 'us-west-2', 'ca-central-1', 'ca-west-1', 'us-gov-east-1', 'us-gov-west-1', 'us-iso-east-1', 'us-iso-west-1', 'us-isob-east-1']),
  ssm: new Set(['us-east-1', 'us-east-2', 'us-west-1', 'us-west-2', 'ca-central-1', 'ca-west-1', 'us-gov-east-1', 'us-gov-west-1']),
  sts: new Set(['us-east-1', 'us-east-2', 'us-west-1', 'us-west-2', 'us-gov-east-1', 'us-gov-west-1']),
};

const SERVICE_NAMES = { secretsmanager: 'Secrets Manager', ssm: 'SSM Parameter Store', sts: 'STS' } as const;

/** The webhook setting that lets endpoint overrides be plain http:// (local emulators only). */
export const PLAIN_HTTP_SETTING = 'FETCHER_ALLOW_PLAIN_HTTP_ENDPOINTS';

const within = (path: string, dir: string): boolean => dir === '/' || path === dir || path.startsWith(`${dir}/`);

/** Where the fetcher mounts volumes of its own. */
function fetcherMounts(config: MutationConfig): string[] {
  return config.fetcherCaBundle === undefined ? [FETCHER_DIR] : [FETCHER_DIR, CA_BUNDLE_DIR];
}

/** The pod field path of the container `name` (app or init), for a problem's subject. */
function containerPath(pod: Pod, name: string | undefined): string {
  const app = pod.spec.containers.findIndex((c) => c.name === name);
  if (app >= 0) return `spec.containers[${app}]`;
  const init = (pod.spec.initContainers ?? []).findIndex((c) => c.name === name);
  return init >= 0 ? `spec.initContainers[${init}]` : 'spec.containers';
}

/** The token files the fetcher would read, each through the app's mount that holds it. */
function tokenMounts(pod: Pod, identity: Identity, config: MutationConfig): Problem[] {
  if (identity.mounts.length === 0) return [];
  const problems: Problem[] = [];
  const source = containerPath(pod, identity.from);
  const volumes = pod.spec.volumes ?? [];
  for (const e of identity.env) {
    if (typeof e.value !== 'string') continue;
    const file = e.value;
    const m = identity.mounts.find((x) => within(file, trimSlash(x.mountPath)));
    if (m === undefined) continue;
    const subject = `${source}.env[${e.name}]`;
    const at = trimSlash(m.mountPath);
    const volume = volumes.find((v) => v.name === m.name);
    if (volume?.hostPath !== undefined && volume.hostPath !== null) {
      problems.push(
        problem('WEBHOOK_UNSUPPORTED_POD', subject, `${quote(file)} is in volume ${quote(m.name)}, a hostPath, which the fetcher never mounts (it would read and write the node's files); give the token a projected serviceAccountToken volume`),
      );
      continue;
    }
    const own = fetcherMounts(config).find((f) => within(f, at) || within(at, f));
    if (own !== undefined) {
      problems.push(
        problem('WEBHOOK_MOUNT_CLASH', subject, `${quote(file)} is read through mount ${quote(at)}, which ${at === own ? 'is' : within(own, at) ? 'holds' : 'lies inside'} the fetcher's own mount ${own}; mount the token elsewhere (EKS uses /var/run/secrets/eks.amazonaws.com/serviceaccount)`),
      );
    }
  }
  return problems;
}

/** Endpoint overrides in clear: IRSA's token, the session credentials and the values would cross the network readable. */
function plainHttpEndpoints(config: MutationConfig): Problem[] {
  if (config.allowPlainHttpEndpoints === true) return [];
  return (config.fetcherNetworkEnv ?? [])
    .filter((e) => e.name.startsWith('AWS_ENDPOINT_URL') && !e.value.toLowerCase().startsWith('https://'))
    .map((e) =>
      problem('WEBHOOK_INSECURE_ENDPOINT', `FETCHER_${e.name}`, `${quote(e.value)} is not https://: the pod's AWS token, credentials and secret values would cross the network in clear (${PLAIN_HTTP_SETTING} allows it for a local emulator only)`),
    );
}

/** FIPS endpoints that do not exist for a region the fetcher would call. */
function fipsRegions(request: InjectionRequest, identity: Identity, config: MutationConfig): Problem[] {
  if (!(config.fetcherNetworkEnv ?? []).some((e) => e.name === 'AWS_USE_FIPS_ENDPOINT' && e.value === 'true')) return [];
  const envRegion = identity.env.find((e) => e.name === 'AWS_REGION' && e.value)?.value ?? identity.env.find((e) => e.name === 'AWS_DEFAULT_REGION' && e.value)?.value;
  const problems: Problem[] = [];
  const reported = new Set<string>();
  const refuse = (service: keyof typeof FIPS_REGIONS, region: string, subject: string, what: string) => {
    if (FIPS_REGIONS[service].has(region) || reported.has(`${service} ${region}`)) return;
    reported.add(`${service} ${region}`);
    problems.push(
      problem('WEBHOOK_UNSUPPORTED_POD', subject, `${what}: ${SERVICE_NAMES[service]} has no FIPS endpoint in ${region} (only in ${[...FIPS_REGIONS[service]].join(', ')}), and the webhook has FETCHER_AWS_USE_FIPS_ENDPOINT=true`),
    );
  };
  let firstRegion: string | undefined;
  for (const item of request.items) {
    const r = referenceTarget(item.ref);
    if (r === undefined) continue;
    const own = r.region;
    const region = own ?? request.region ?? envRegion;
    if (region === undefined) continue;
    firstRegion ??= region;
    const subject = own === undefined && request.region !== undefined ? `${PREFIX}region` : 'FETCHER_AWS_USE_FIPS_ENDPOINT';
    refuse(r.service, region, subject, `secret ${quote(item.ref, 60)} is read in ${region}`);
    if (request.failoverRegion !== undefined) {
      refuse(r.service, request.failoverRegion, `${PREFIX}failover-region`, `secret ${quote(item.ref, 60)} is also read in the failover region`);
    }
  }
  // STS: IRSA's token exchange and role chaining (EKS's own webhook may add IRSA after this one,
  // so only a pod that visibly uses Pod Identity without a role to chain into skips it).
  const podIdentityOnly = identity.env.some((e) => e.name === 'AWS_CONTAINER_CREDENTIALS_FULL_URI') && request.roleArn === undefined;
  const stsRegion = request.region ?? envRegion ?? firstRegion;
  if (!podIdentityOnly && stsRegion !== undefined) {
    refuse('sts', stsRegion, request.region !== undefined ? `${PREFIX}region` : 'FETCHER_AWS_USE_FIPS_ENDPOINT', `the fetcher calls STS in ${stsRegion} (IRSA's token exchange${request.roleArn === undefined ? '' : `, ${PREFIX}role-arn`})`);
  }
  return problems;
}

/** `identity`: the pod's, as findIdentity gives it (the caller's, when it has it already). */
export function validateFetcher(pod: Pod, request: InjectionRequest, config: MutationConfig, identity: Identity = findIdentity(pod, request)): Problem[] {
  return [...tokenMounts(pod, identity, config), ...plainHttpEndpoints(config), ...fipsRegions(request, identity, config)];
}
