// The seams between the webhook's pure core (annotations, mutate, review) and its HTTP shell
// (server, config, metrics). Both sides import these; neither reaches into the other.

import type { NetworkEnvName, Timeouts } from '../fetcher/spec.js';
import type { CpuLimitPolicy } from './cpu-limit.js';

/** What the mutation needs from the webhook's configuration (config.ts builds it from env/flags). */
export interface MutationConfig {
  /** Image of the init container (the fetcher). */
  fetcherImage: string;
  fetcherImagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  /** Kubernetes quantities, e.g. { requests: { cpu: '10m', memory: '32Mi' }, limits: { memory: '64Mi' } }. */
  fetcherResources: {
    requests: Record<string, string>;
    limits: Record<string, string>;
  };
  /** The uid/gid the fetcher runs as (non-root). */
  fetcherUid: number;
  /** Mount path when a pod does not set `secrets.k8s.aws/mount-path`. */
  defaultMountPath: string;
  /**
   * sizeLimit of the memory-backed emptyDir, a Kubernetes quantity; undefined: none. The volume is
   * mounted read-write at /tmp by default, where the app keeps its own temporary files: a limit
   * they outgrow gets the pod evicted, so there is none by default.
   */
  volumeSizeLimit?: string;
  /** Passed to the fetcher in its spec. */
  fetchTimeouts?: Timeouts;
  /** Whether the cluster runs native sidecars (init containers with restartPolicy Always, 1.29+). */
  nativeSidecars: boolean;
  /** Resources of the refresh sidecar, which lives as long as the pod. */
  refresherResources: {
    requests: Record<string, string>;
    limits: Record<string, string>;
  };
  /** The fetcher's network variables (proxy, FIPS/dual-stack, endpoint URLs), validated; only those set. */
  fetcherNetworkEnv?: Array<{ name: NetworkEnvName; value: string }>;
  /**
   * Endpoint overrides in fetcherNetworkEnv may be plain http:// (a local emulator); otherwise a
   * pod is refused while one is (webhook setting FETCHER_ALLOW_PLAIN_HTTP_ENDPOINTS).
   */
  allowPlainHttpEndpoints?: boolean;
  /** A ConfigMap key in the pod's namespace holding PEM CA certificates the fetcher trusts too. */
  fetcherCaBundle?: { configMap: string; key: string };
  /**
   * `allow`: a pod without IRSA or EKS Pod Identity may fetch with the node's credentials (the SDK's
   * default chain); the fetcher then carries NODE_CREDENTIALS_ENV=allow. Default `deny`.
   */
  nodeCredentials: 'deny' | 'allow';
  /**
   * `pod` (the default when unset): the fetcher's CPU limit is read from the pod, as large as the
   * pod's own limits allow and never below `fetcherResources.limits.cpu`, and the refresher goes
   * unlimited in an unlimited pod (webhook/cpu-limit.ts); `fixed`: exactly the configured limits.
   */
  cpuLimitPolicy?: CpuLimitPolicy;
  /**
   * Where write-through keeps Kubernetes Secrets in Secrets Manager (WRITE_THROUGH_*), for pods'
   * `fromSecret` entries; unset, such entries are refused.
   */
  store?: { cluster: string; prefix: string; region?: string };
}

export const DEFAULT_MUTATION_CONFIG: MutationConfig = {
  fetcherImage: 'ghcr.io/aws-secret-injector/fetcher:0.1.0',
  fetcherImagePullPolicy: 'IfNotPresent',
  fetcherResources: {
    requests: { cpu: '10m', memory: '32Mi' },
    // 80Mi: the worst case of AWS's maxima (100 secrets of 64 KiB written whole) peaks at 60 MiB in
    // a memory cgroup, and the fetcher keeps 8 MiB free for writing (fetcher/budget.ts).
    limits: { cpu: '200m', memory: '80Mi' },
  },
  fetcherUid: 65532,
  defaultMountPath: '/tmp',
  nativeSidecars: true,
  refresherResources: {
    requests: { cpu: '5m', memory: '16Mi' },
    limits: { cpu: '100m', memory: '64Mi' },
  },
  nodeCredentials: 'deny',
  cpuLimitPolicy: 'pod',
};

/** How one review ended; the shell turns this into a log line and metrics. */
export type ReviewOutcome =
  | 'injected' // patched: the pod asked for secrets and got the volume + init container
  | 'skipped' // allowed unchanged: not a pod, not a CREATE, no annotations of ours, or opted out
  | 'already-injected' // allowed unchanged: the pod carries our status annotation
  | 'denied' // refused: bad annotations or a pod we cannot inject without breaking it
  | 'template-allowed' // a workload's pod template reviewed: admitted unchanged (warnings, if any, to the client)
  | 'template-denied' // a workload refused: every pod of its template would be denied
  | 'stored'; // the write-through writer: a Secret's value written (or deleted) in Secrets Manager

export interface ReviewLog {
  uid: string;
  namespace?: string;
  /** metadata.name, or generateName when the name is not set yet. */
  name?: string;
  operation?: string;
  kind?: string;
  dryRun: boolean;
  outcome: ReviewOutcome;
  warnings: number;
  /** Denial reason (annotation names and why; never values of env or secrets). */
  reason?: string;
}

/** An admission.k8s.io/v1 AdmissionReview response, as sent back to the apiserver. */
export interface AdmissionReviewResponse {
  apiVersion: 'admission.k8s.io/v1';
  kind: 'AdmissionReview';
  response: {
    uid: string;
    allowed: boolean;
    patchType?: 'JSONPatch';
    /** base64 of the JSON Patch. */
    patch?: string;
    warnings?: string[];
    status?: { code: number; message: string; reason?: string };
  };
}

/**
 * review(body, config): the whole handler, pure and synchronous.
 *   - a well-formed AdmissionReview -> { kind: 'review' } (HTTP 200), whatever the pod holds
 *   - anything the apiserver would never send (not an object, wrong apiVersion/kind, no
 *     request or uid) -> { kind: 'bad-request' } with a short message (HTTP 400)
 */
export type ReviewResult =
  | { kind: 'review'; response: AdmissionReviewResponse; log: ReviewLog }
  | { kind: 'bad-request'; statusCode: 400; message: string };

export type ReviewHandler = (body: unknown, config: MutationConfig) => ReviewResult;

/** A handler that calls out before answering (the write-through writer, which writes to AWS). */
export type AsyncReviewHandler = (body: unknown, config: MutationConfig) => Promise<ReviewResult>;
