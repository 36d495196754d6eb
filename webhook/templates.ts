// The workload template review: Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs and
// CronJobs, reviewed where users apply them. Their pods are made by controllers, which throw
// admission warnings away and report a denial only as an event; a review of the template at
// `kubectl apply` shows the user the same warnings and the same denial the pods would get. It
// changes nothing: no patch, ever. A second pipeline of the pod review's shape, sharing its
// envelope and its pipeline from should-inject to render:
//   envelope -> template (the kind's pod template) -> changed? -> the pod pipeline -> allowed / denied

import { PREFIX } from './annotations.js';
import { answer, openReview, refuse, reviewPod } from './review.js';
import type { ReviewHandler } from './types.js';

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Where each workload kind keeps its pod template, by API group (a Pod is its own template). */
export const WORKLOADS: Readonly<Record<string, { group: string; path: readonly string[] }>> = {
  Deployment: { group: 'apps', path: ['spec', 'template'] },
  StatefulSet: { group: 'apps', path: ['spec', 'template'] },
  DaemonSet: { group: 'apps', path: ['spec', 'template'] },
  ReplicaSet: { group: 'apps', path: ['spec', 'template'] },
  Job: { group: 'batch', path: ['spec', 'template'] },
  CronJob: { group: 'batch', path: ['spec', 'jobTemplate', 'spec', 'template'] },
};

export function at(obj: unknown, path: readonly string[]): unknown {
  let v = obj;
  for (const k of path) v = isObject(v) ? v[k] : undefined;
  return v;
}

/** The template as the pod pipeline reads a pod: metadata and spec. */
export function templatePod(template: Obj): Obj {
  const pod: Obj = { metadata: template.metadata, spec: template.spec };
  if (pod.metadata === undefined) delete pod.metadata;
  return pod;
}

/** Our annotations on the workload's own metadata never reach a pod: say where they belong. */
export function misplacedAnnotations(obj: unknown, kind: string, path: readonly string[]): string | undefined {
  const meta = isObject(obj) && isObject(obj.metadata) && isObject(obj.metadata.annotations) ? obj.metadata.annotations : {};
  const ours = Object.keys(meta).filter((k) => k.startsWith(PREFIX)).sort();
  if (ours.length === 0) return undefined;
  return `${ours.join(', ')} on the ${kind}'s own metadata are ignored; put them on the pod template (${path.join('.')}.metadata.annotations)`;
}

/** Same JSON, compared without serialising: a template is at most a few MB and usually equal. */
function same(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => same(x, b[i]));
  if (!isObject(a) || !isObject(b)) return false;
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && same(a[k], b[k]));
}

export const reviewTemplate: ReviewHandler = (body, config) => {
  const e = openReview(body);
  if ('kind' in e) return e;
  const workload = WORKLOADS[e.gvk.kind];
  const subResource = e.request.subResource;
  if (workload === undefined || workload.group !== e.gvk.group || (e.operation !== 'CREATE' && e.operation !== 'UPDATE') || (typeof subResource === 'string' && subResource !== '')) {
    return answer(e, 'skipped', []);
  }
  const template = at(e.object, workload.path);
  // An update that leaves the template as it was (a controller's bookkeeping, a finalizer
  // removed, a scale) changes no pod: nothing to say, and nothing to refuse.
  if (e.operation === 'UPDATE' && same(template, at(e.request.oldObject, workload.path))) return answer(e, 'skipped', []);
  const misplaced = misplacedAnnotations(e.object, e.gvk.kind, workload.path);
  const before = misplaced === undefined ? [] : [misplaced];
  if (!isObject(template)) return answer(e, 'skipped', before);
  const result = reviewPod(templatePod(template), config, e.log.namespace);
  switch (result.outcome) {
    case 'denied':
      return refuse(e, 'template-denied', { ...result, warnings: [...before, ...result.warnings] });
    case 'skipped':
      return answer(e, before.length + result.warnings.length > 0 ? 'template-allowed' : 'skipped', [...before, ...result.warnings]);
    default:
      return answer(e, 'template-allowed', [...before, ...result.warnings]);
  }
};
