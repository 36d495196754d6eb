// The in-cluster writer's admission handler: a labelled Opaque Secret in, its value written to
// Secrets Manager, and a patch out that leaves no value in the stored object. A second pipeline of
// the pod webhook's shape, served by the same HTTP shell from its own Deployment, ServiceAccount
// and IAM role. Stages:
//   envelope -> should-write (Secret, labelled, namespace) -> validate (type, name, content)
//   -> write (AWS; skipped on dry-run) -> render (the patch: diff of the reference-only object)
// DELETE: deletionPolicy Retain (nothing happens) or Delete (deletion scheduled with a recovery
// window; writing the same Secret again restores it).
// Nothing here logs or answers a value: problems name keys, the store name and AWS errors only.

import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import jsonpatch from 'fast-json-patch';
import type { AdmissionReviewResponse, AsyncReviewHandler, ReviewLog, ReviewOutcome, ReviewResult } from '../webhook/types.js';
import {
  encodeContent,
  storeName,
  storeTags,
  STORED_IN_ANNOTATION,
  VERSION_ID_ANNOTATION,
  WRITE_THROUGH_LABEL,
  writeProblem,
  type StoreTarget,
  type WriteProblem,
} from './layout.js';
import { ADMISSION_API_VERSION, readEnvelope } from '../webhook/review.js';
import { LAST_APPLIED } from './push.js';
import { scheduleDeletion, writeContent, WriteError } from './write.js';

/** Namespaces the writer never takes Secrets from (its own is added from its settings). */
export const EXCLUDED_NAMESPACES = ['kube-system', 'kube-public', 'kube-node-lease'] as const;
export const DELETION_POLICIES = ['Retain', 'Delete'] as const;
export type DeletionPolicy = (typeof DELETION_POLICIES)[number];

export interface WriterConfig {
  cluster: string;
  prefix: string;
  kmsKeyId?: string;
  deletionPolicy: DeletionPolicy;
  /** Secrets Manager's recovery window for Delete: 7 to 30 days. */
  recoveryDays: number;
  /** The writer's share of the webhook's timeout, retries of throttled calls included. */
  deadlineMs: number;
  /** The writer's own namespace, never reviewed. */
  namespace?: string;
}

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const labelled = (obj: unknown): boolean =>
  isObject(obj) && isObject(obj.metadata) && isObject(obj.metadata.labels) && obj.metadata.labels[WRITE_THROUGH_LABEL] === 'true';
const annotationsOf = (obj: Obj): Record<string, string> =>
  isObject(obj.metadata) && isObject(obj.metadata.annotations) ? (obj.metadata.annotations as Record<string, string>) : {};
const holdsValues = (obj: Obj): boolean =>
  (isObject(obj.data) && Object.keys(obj.data).length > 0) || (isObject(obj.stringData) && Object.keys(obj.stringData).length > 0);

/** kubectl's copy of the manifest without its values, or undefined when it cannot be read (then it goes). */
function sanitisedLastApplied(text: string): string | undefined {
  try {
    const applied = JSON.parse(text) as unknown;
    if (!isObject(applied)) return undefined;
    delete applied.data;
    delete applied.stringData;
    return `${JSON.stringify(applied)}\n`;
  } catch {
    return undefined;
  }
}

/** The object as it is stored: no data, no stringData, no value in last-applied, our annotations. */
export function referenceForm(obj: Obj, stored: Record<string, string | undefined>): Obj {
  const out: Obj = { ...obj };
  delete out.data;
  delete out.stringData;
  const metadata: Obj = isObject(obj.metadata) ? { ...obj.metadata } : {};
  const annotations: Record<string, string> = { ...annotationsOf(obj) };
  const last = annotations[LAST_APPLIED];
  if (last !== undefined) {
    const clean = sanitisedLastApplied(last);
    if (clean === undefined) delete annotations[LAST_APPLIED];
    else annotations[LAST_APPLIED] = clean;
  }
  for (const [k, v] of Object.entries(stored)) if (v !== undefined) annotations[k] = v;
  metadata.annotations = annotations;
  out.metadata = metadata;
  return out;
}

export interface WriterDeps {
  sm: SecretsManagerClient;
}

/** The writer's handler for the HTTP shell. */
export function writerHandler(config: WriterConfig, deps: WriterDeps): AsyncReviewHandler {
  const excluded = new Set<string>([...EXCLUDED_NAMESPACES, ...(config.namespace ? [config.namespace] : [])]);
  return async (body) => {
    const read = readEnvelope(body);
    if (!('envelope' in read)) return read;
    const { request, uid, gvk } = read.envelope;

    const operation = str(request.operation);
    const dryRun = request.dryRun === true;
    const object = isObject(request.object) ? request.object : undefined;
    const oldObject = isObject(request.oldObject) ? request.oldObject : undefined;
    const current = operation === 'DELETE' ? oldObject : object;
    const metadata = current && isObject(current.metadata) ? current.metadata : {};
    const namespace = str(request.namespace) ?? str(metadata.namespace);
    const name = str(request.name) ?? str(metadata.name);
    const log: ReviewLog = { uid, dryRun, outcome: 'skipped', warnings: 0, kind: gvk.kind };
    if (namespace !== undefined) log.namespace = namespace;
    if (name !== undefined || str(metadata.generateName) !== undefined) log.name = name ?? str(metadata.generateName)!;
    if (operation !== undefined) log.operation = operation;
    const response: AdmissionReviewResponse = { apiVersion: ADMISSION_API_VERSION, kind: 'AdmissionReview', response: { uid, allowed: true } };
    const warnings: string[] = [];
    const done = (outcome: ReviewOutcome): ReviewResult => {
      log.outcome = outcome;
      log.warnings = warnings.length;
      if (warnings.length > 0) response.response.warnings = warnings;
      return { kind: 'review', response, log };
    };
    const deny = (problems: WriteProblem[]): ReviewResult => {
      response.response.allowed = false;
      const lines = problems.map((p) => `${p.subject}: ${p.message}`);
      response.response.status = { code: 403, reason: 'Forbidden', message: `aws-secret-injector write-through: ${lines.join('; ')}` };
      log.reason = problems.map((p) => `${p.subject} (${p.code})`).join(', ');
      return done('denied');
    };

    // Stage should-write.
    const isSecret = (gvk.group ?? '') === '' && gvk.version === 'v1' && gvk.kind === 'Secret';
    if (!isSecret || str(request.subResource) !== undefined || current === undefined) return done('skipped');
    if (namespace === undefined || excluded.has(namespace)) return done('skipped');
    if (operation === 'UPDATE' && !labelled(object) && labelled(oldObject)) {
      // The label is being removed: what the Secret holds from now on would be stored in etcd.
      if (object && holdsValues(object)) {
        return deny([writeProblem('WRITE_REFUSED', `metadata.labels.${WRITE_THROUGH_LABEL}`, 'is being removed from a Secret that holds data, which would then be stored in etcd: remove the data in the same update, or delete the Secret and create it without the label')]);
      }
      warnings.push(`this Secret is no longer written through; its value stays in Secrets Manager (${annotationsOf(oldObject!)[STORED_IN_ANNOTATION] ?? 'not recorded'}) and is not deleted`);
      return done('skipped');
    }
    if (!labelled(current)) return done('skipped');
    if (name === undefined) {
      return deny([writeProblem('WRITE_REFUSED', 'metadata.generateName', 'a Secret written through needs metadata.name: with generateName its name, and so the name it is stored under, is not known when it is reviewed')]);
    }
    const n = storeName(config, namespace, name);
    if ('problem' in n) return deny([n.problem]);
    const target: StoreTarget = { name: n.name, tags: storeTags(config.cluster, namespace, name) };
    if (config.kmsKeyId !== undefined) target.kmsKeyId = config.kmsKeyId;
    const signal = AbortSignal.timeout(config.deadlineMs);

    if (operation === 'DELETE') {
      if (config.deletionPolicy === 'Retain' || dryRun) return done('skipped');
      try {
        const outcome = await scheduleDeletion(deps.sm, target, config.recoveryDays, { signal });
        if (outcome === 'scheduled') warnings.push(`Secrets Manager secret ${n.name} is scheduled for deletion in ${config.recoveryDays} days; creating this Secret again before then restores it`);
        return done('stored');
      } catch (e) {
        return deny([e instanceof WriteError ? e.problem : writeProblem('WRITE_AWS', 'DeleteSecret', `${n.name}: ${(e as Error).name}`)]);
      }
    }
    if (operation !== 'CREATE' && operation !== 'UPDATE') return done('skipped');

    // Stage validate.
    const obj = object!;
    const problems: WriteProblem[] = [];
    const type = obj.type === undefined || obj.type === null ? 'Opaque' : obj.type;
    if (type !== 'Opaque') problems.push(writeProblem('WRITE_REFUSED', 'type', `is ${JSON.stringify(type)}: only Opaque Secrets are written through (Kubernetes itself reads the keys of the other types)`));
    const previous = oldObject ? annotationsOf(oldObject) : {};
    let stored: Record<string, string | undefined> = {
      [STORED_IN_ANNOTATION]: previous[STORED_IN_ANNOTATION],
      [VERSION_ID_ANNOTATION]: previous[VERSION_ID_ANNOTATION],
    };
    if (!holdsValues(obj)) {
      // Metadata only (a label, an annotation, a reference-only manifest): the value is kept.
      if (problems.length > 0) return deny(problems);
      return patched(obj, stored, 'skipped');
    }
    const content = encodeContent(obj);
    if ('problems' in content) problems.push(...content.problems);
    if (problems.length > 0 || !('content' in content)) return deny(problems);

    // Stage write: on a dry run nothing is called, and the annotations are the last write's (or
    // the store name for a Secret not written yet).
    if (dryRun) {
      stored = { ...stored, [STORED_IN_ANNOTATION]: stored[STORED_IN_ANNOTATION] ?? n.name };
      return patched(obj, stored, 'stored');
    }
    try {
      const written = await writeContent(deps.sm, target, content.content.json, { signal });
      if (written.outcome === 'restored') warnings.push(`Secrets Manager secret ${n.name} was scheduled for deletion and is restored`);
      return patched(obj, { [STORED_IN_ANNOTATION]: written.arn, [VERSION_ID_ANNOTATION]: written.versionId }, 'stored');
    } catch (e) {
      return deny([e instanceof WriteError ? e.problem : writeProblem('WRITE_AWS', 'write', `${n.name}: ${(e as Error).name}`)]);
    }

    // Stage render: the patch is the diff of the object as it arrived and its reference form.
    function patched(raw: Obj, annotations: Record<string, string | undefined>, outcome: ReviewOutcome): ReviewResult {
      const patch = jsonpatch.compare(raw, referenceForm(raw, annotations));
      if (patch.length > 0) {
        response.response.patchType = 'JSONPatch';
        response.response.patch = Buffer.from(JSON.stringify(patch)).toString('base64');
      }
      return done(outcome);
    }
  };
}

