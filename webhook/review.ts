// The admission handler: an AdmissionReview (admission.k8s.io/v1) in, the answer out. Pure and
// synchronous; server.ts is the HTTP shell around it. Stages, each with its own problems:
//   envelope -> should-inject -> defaults + parse -> validate -> render -> patch
// The patch is the diff between the object exactly as it arrived and the mutated copy, so fields
// this code does not model (newer API fields, native sidecars' restartPolicy, ...) are kept.

import jsonpatch, { type Operation } from 'fast-json-patch';
import { parseSpec, serialiseSpec, SPEC_ENV, type FetchSpec } from '../fetcher/spec.js';
import { checkBounds, parseAnnotations, shouldInject, STATUS_ANNOTATION, type Annotations, type Defaults } from './annotations.js';
import { expandLikeKubelet } from './kubelet-env.js';
import { buildSpec, checkPod, findIdentity, mutate, validateRefresh, validateResources, validateSignal, validateTarget, type Pod } from './mutate.js';
import { firstOf, formatProblems, problem, quote, type Problem, type Stage, type StageProblems } from './problems.js';
import { validateFetcher } from './validate-fetcher.js';
import type { AdmissionReviewResponse, MutationConfig, ReviewHandler, ReviewLog, ReviewOutcome, ReviewResult } from './types.js';

const { compare } = jsonpatch;

export const ADMISSION_API_VERSION = 'admission.k8s.io/v1';
/** The apiserver drops warnings beyond 256 characters; keep ours whole by staying under. */
export const MAX_WARNING = 250;
/**
 * Warnings one answer carries at most, the last of them counting the rest. The apiserver passes a
 * client 4 KB of warnings from all webhooks and policies of a request and drops the rest: ours keep
 * within about half of that (9 × 250 characters).
 */
export const MAX_WARNINGS = 8;

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

export type PodOutcome =
  | { outcome: 'skipped' | 'already-injected'; warnings: string[] }
  | { outcome: 'denied'; groups: StageProblems[]; message: string; warnings: string[] }
  | { outcome: 'injected'; pod: Pod; patch: Operation[]; warnings: string[] };

function annotationsOf(obj: unknown): Annotations | Problem {
  if (!isObject(obj)) return {};
  const metadata = obj.metadata;
  if (metadata === undefined || metadata === null) return {};
  if (!isObject(metadata)) return problem('WEBHOOK_INVALID_POD', 'metadata', 'must be an object');
  const a = metadata.annotations;
  if (a === undefined || a === null) return {};
  if (!isObject(a)) return problem('WEBHOOK_INVALID_POD', 'metadata.annotations', 'must map names to strings');
  const notText = Object.keys(a).find((k) => typeof a[k] !== 'string');
  if (notText !== undefined) {
    // In YAML an unquoted yes, on, true or 0644 is not text: the usual way to get here.
    return problem('WEBHOOK_INVALID_POD', 'metadata.annotations', `must map names to strings; ${quote(notText)} is ${quote(a[notText])}: quote the value in YAML`);
  }
  return a as Annotations;
}

function deny(stage: Stage, problems: Problem[], warnings: string[]): PodOutcome {
  return denyAll([{ stage, problems }], warnings);
}

function denyAll(groups: StageProblems[], warnings: string[]): PodOutcome {
  return { outcome: 'denied', groups, message: formatProblems(groups), warnings };
}

/**
 * JSON Patch from the raw object to the mutated one. `mutate` shares every unchanged part with
 * the raw object and `compare` skips identical objects, so the diff walks only what changed. The
 * insertions at the front (the fetcher, first among init containers, and the refresher after it)
 * are stated as operations of their own and the rest is diffed: `compare` aligns arrays by index,
 * so they would come out as a rewrite of every existing init container, and it would deep-copy
 * the added containers into its operations, the largest values of the patch, only for the patch
 * to be serialised once more.
 */
export function diff(raw: Obj, mutated: Pod): Operation[] {
  const spec = isObject(raw.spec) ? raw.spec : undefined;
  const before = spec?.initContainers;
  const after = mutated.spec.initContainers;
  const existing = Array.isArray(before) ? before : [];
  const inserted = after ? after.length - existing.length : 0;
  if (!spec || !after || (inserted !== 1 && inserted !== 2) || (before !== undefined && before !== null && !Array.isArray(before))) {
    return compare(raw, mutated);
  }
  const front = after.slice(0, inserted);
  const inserts: Operation[] = Array.isArray(before)
    ? front.map((value, i) => ({ op: 'add', path: `/spec/initContainers/${i}`, value }))
    : [{ op: before === undefined ? 'add' : 'replace', path: '/spec/initContainers', value: front }];
  const base = { ...raw, spec: { ...spec, initContainers: [...front, ...existing] } };
  return [...inserts, ...compare(base, mutated)];
}

/**
 * For a pod that says it is injected: a warning when no fetcher is there, or when its fetcher was
 * made for other secrets than the annotations now name (a manifest injected by the inject
 * preview, then edited). The webhook leaves such a pod alone, so without this the new secrets
 * would silently never be fetched.
 */
function injectedDrift(obj: unknown, annotations: Annotations, config: MutationConfig): string | undefined {
  const spec = isObject(obj) && isObject(obj.spec) ? obj.spec : {};
  const inits = Array.isArray(spec.initContainers) ? spec.initContainers : [];
  const env = inits.flatMap((c) => (isObject(c) && Array.isArray(c.env) ? (c.env as unknown[]) : [])).find((e) => isObject(e) && e.name === SPEC_ENV);
  if (!isObject(env)) return `${STATUS_ANNOTATION} is set but the pod has no fetcher init container, so no secret is fetched; remove ${STATUS_ANNOTATION}`;
  const had = typeof env.value === 'string' ? parseSpec(expandLikeKubelet(env.value)) : undefined;
  const wanted = parseAnnotations(annotations, parseDefaults(config, namespaceOf(obj)));
  if (had === undefined || 'errors' in had || 'problems' in wanted) return undefined;
  // Both through the fetcher's own parser, so they compare in one shape.
  const now = parseSpec(serialiseSpec(buildSpec(wanted.request, config)));
  const what = (s: FetchSpec) => JSON.stringify([s.items, s.mode, s.region, s.roleArn]);
  if ('errors' in now || what(had.spec) === what(now.spec)) return undefined;
  return `${STATUS_ANNOTATION} is set, but the fetcher was made for other secret annotations than the pod has now and fetches the old set; inject the manifest again`;
}

const namespaceOf = (obj: unknown): string | undefined => (isObject(obj) && isObject(obj.metadata) ? str(obj.metadata.namespace) : undefined);

function parseDefaults(config: MutationConfig, namespace: string | undefined): Defaults {
  const defaults: Defaults = { mountPath: config.defaultMountPath };
  if (config.store !== undefined) defaults.store = config.store;
  if (namespace !== undefined) defaults.namespace = namespace;
  return defaults;
}

/** The whole pipeline for one pod object (also used by the inject preview for pod templates). */
export function reviewPod(obj: unknown, config: MutationConfig, namespace?: string): PodOutcome {
  const annotations = annotationsOf(obj);
  if ('code' in annotations) return deny('should-inject', [annotations as Problem], []);
  // Alone and first: past these bounds every later stage would cost more than any real pod's.
  const bounds = checkBounds(annotations);
  if (bounds.length > 0) return deny('should-inject', bounds, []);
  const decision = shouldInject(annotations);
  const warnings = [...decision.warnings];
  // Every stage up to render runs even after one found problems, on what did parse, so the
  // denial names every problem at once rather than one stage's at a time.
  const groups: StageProblems[] = [];
  if (!decision.inject) {
    if (decision.outcome !== 'denied') {
      if (decision.outcome === 'already-injected') {
        const drift = injectedDrift(obj, annotations, config);
        if (drift !== undefined) warnings.push(drift);
      }
      return { outcome: decision.outcome, warnings };
    }
    groups.push({ stage: 'should-inject', problems: decision.problems });
  }

  const parsed = parseAnnotations(annotations, parseDefaults(config, namespace ?? namespaceOf(obj)));
  warnings.push(...parsed.warnings);
  const request = 'problems' in parsed ? parsed.partial : parsed.request;
  if ('problems' in parsed) groups.push({ stage: 'parse', problems: parsed.problems });

  const shape = checkPod(obj);
  if (shape.length > 0) return denyAll([...groups, { stage: 'validate', problems: shape }], warnings);
  const pod = obj as Pod;
  const identity = findIdentity(pod, request);
  const fit = validateTarget(pod, request, 'problems' in parsed ? parsed.refused : undefined, identity);
  warnings.push(...fit.warnings);
  const fitProblems = [
    ...fit.problems,
    ...validateResources(pod, config),
    ...validateRefresh(request, config),
    ...validateSignal(pod, request, 'problems' in parsed ? parsed.refused : undefined),
    ...validateFetcher(pod, request, config, identity),
  ];
  if (fitProblems.length > 0) groups.push({ stage: 'validate', problems: fitProblems });
  if (groups.length > 0) return denyAll(groups, warnings);

  const result = mutate(pod, request, config, identity);
  warnings.push(...result.warnings);
  // The patch must only add: a `remove` or `move` would delete something of the user's. Whether
  // it reproduces the mutation exactly, and whether the fetcher accepts its spec, the golden
  // fixtures and the property test check for every pod they hold, not each review again.
  const patch = diff(obj as Obj, result.pod);
  const bad = patch.find((op) => op.op !== 'add' && op.op !== 'replace');
  if (bad !== undefined) return deny('render', [problem('WEBHOOK_INTERNAL', 'patch', `would ${bad.op} ${bad.path}`)], warnings);
  return { outcome: 'injected', pod: result.pod, patch, warnings };
}

function badRequest(message: string): ReviewResult {
  return { kind: 'bad-request', statusCode: 400, message };
}

// Warnings name annotation keys, which the apiserver has not validated yet when it calls us: keep
// them printable, as the apiserver drops warnings that are not.
const clip = (w: string): string => {
  const printable = w.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
  return printable.length > MAX_WARNING ? `${printable.slice(0, MAX_WARNING - 1)}…` : printable;
};

/** The warnings as an answer carries them: each printable and cut short, the first few, the rest counted. */
export function admissionWarnings(warnings: readonly string[]): string[] {
  const shown = warnings.slice(0, MAX_WARNINGS).map(clip);
  const more = warnings.length - shown.length;
  if (more > 0) shown.push(`… and ${more} more aws-secret-injector warning${more === 1 ? '' : 's'}; \`aws-secret-injector inject -f <manifest>\` lists them all`);
  return shown;
}

export interface Envelope {
  request: Obj;
  uid: string;
  gvk: { group?: unknown; version: string; kind: string };
}

/** The envelope every handler checks first (the pods' and the writer's): its request, or a 400. */
export function readEnvelope(body: unknown): { envelope: Envelope } | ReviewResult {
  if (!isObject(body)) return badRequest('body must be a JSON object (an AdmissionReview)');
  if (body.apiVersion !== ADMISSION_API_VERSION) return badRequest(`apiVersion must be ${ADMISSION_API_VERSION}`);
  if (body.kind !== 'AdmissionReview') return badRequest('kind must be AdmissionReview');
  const request = body.request;
  if (!isObject(request)) return badRequest('request is missing');
  const uid = str(request.uid);
  if (uid === undefined) return badRequest('request.uid is missing');
  const gvk = request.kind;
  if (!isObject(gvk) || typeof gvk.kind !== 'string' || typeof gvk.version !== 'string') {
    return badRequest('request.kind must be {group, version, kind}');
  }
  return { envelope: { request, uid, gvk: gvk as Envelope['gvk'] } };
}

/** A review on its way through a handler: the request, and the log line and answer it fills in. */
export interface Review {
  request: Obj;
  gvk: { group: string; version: string; kind: string };
  operation?: string;
  object: unknown;
  log: ReviewLog;
  response: AdmissionReviewResponse;
}

/** The envelope read, and the names for the review's log line: where the pods' and the templates' handlers start. */
export function openReview(body: unknown): Review | ReviewResult {
  const read = readEnvelope(body);
  if (!('envelope' in read)) return read;
  const { request, uid, gvk } = read.envelope;
  const object = request.object;
  const metadata = isObject(object) && isObject(object.metadata) ? object.metadata : {};
  const log: ReviewLog = { uid, dryRun: request.dryRun === true, outcome: 'skipped', warnings: 0 };
  const namespace = str(request.namespace) ?? str(metadata.namespace);
  if (namespace !== undefined) log.namespace = namespace;
  const name = str(metadata.name) ?? str(metadata.generateName) ?? str(request.name);
  if (name !== undefined) log.name = name;
  const operation = str(request.operation);
  if (operation !== undefined) log.operation = operation;
  log.kind = gvk.kind;
  const response: AdmissionReviewResponse = { apiVersion: ADMISSION_API_VERSION, kind: 'AdmissionReview', response: { uid, allowed: true } };
  const review: Review = { request, gvk: { group: typeof gvk.group === 'string' ? gvk.group : '', version: gvk.version, kind: gvk.kind }, object, log, response };
  if (operation !== undefined) review.operation = operation;
  return review;
}

/** The answer: the outcome and warnings into the log line, the warnings (capped) into the response. */
export function answer(e: Review, outcome: ReviewOutcome, warnings: readonly string[]): ReviewResult {
  e.log.outcome = outcome;
  e.log.warnings = warnings.length;
  if (warnings.length > 0) e.response.response.warnings = admissionWarnings(warnings);
  return { kind: 'review', response: e.response, log: e.log };
}

/** A denial of the pod pipeline's problems: its one message to the user, annotation names and codes to the log. */
export function refuse(e: Review, outcome: ReviewOutcome, denied: Extract<PodOutcome, { outcome: 'denied' }>): ReviewResult {
  e.response.response.allowed = false;
  e.response.response.status = { code: 403, reason: 'Forbidden', message: denied.message };
  // The log names annotations and problem codes only: the message quotes values, and a
  // value typed into the wrong annotation could be a secret.
  e.log.reason = denied.groups.map((g) => `${g.stage}: ${firstOf(g.problems.map((p) => `${p.subject} (${p.code})`)).join(', ')}`).join('; ');
  return answer(e, outcome, denied.warnings);
}

export const review: ReviewHandler = (body, config) => {
  const e = openReview(body);
  if ('kind' in e) return e;
  const { gvk, operation } = e;
  const isPod = gvk.group === '' && gvk.version === 'v1' && gvk.kind === 'Pod';
  if (!isPod || operation !== 'CREATE' || str(e.request.subResource) !== undefined) return answer(e, 'skipped', []);

  // The review's namespace: a pod made by a controller may not carry its own yet.
  const result = reviewPod(e.object, config, e.log.namespace);
  switch (result.outcome) {
    case 'skipped':
    case 'already-injected':
      return answer(e, result.outcome, result.warnings);
    case 'denied':
      return refuse(e, 'denied', result);
    case 'injected':
      e.response.response.patchType = 'JSONPatch';
      e.response.response.patch = Buffer.from(JSON.stringify(result.patch)).toString('base64');
      return answer(e, 'injected', result.warnings);
  }
};
