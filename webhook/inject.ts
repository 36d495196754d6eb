// The inject preview: manifests in, the same manifests out with every pod template mutated exactly
// as the webhook would mutate the pods made from it. Pure: text in, text out.
//
// The webhook's own JSON Patch (review.ts's reviewPod) is applied to the parsed YAML document
// rather than re-serialising the object, so comments, key order and untouched fields survive.
// A document with anchors, aliases or merge keys is read as kubectl reads it (merges resolved)
// and written back from its value before it is patched: a path of the patch may run through an
// alias, and patching a shared node would change every place that refers to it.

import YAML, { isMap, isSeq, visit, type Document, type Node } from 'yaml';
import { quote } from './problems.js';
import { reviewPod } from './review.js';
import { at as valueAt, misplacedAnnotations, templatePod, WORKLOADS } from './templates.js';
import type { MutationConfig } from './types.js';
import { repeatedKey } from './yaml-keys.js';

/** Where each kind keeps its pod template: the reviewed workloads, a Pod (its own template), a ReplicationController. */
export const TEMPLATE_PATHS: Readonly<Record<string, readonly string[]>> = Object.fromEntries([
  ['Pod', []],
  ...Object.entries(WORKLOADS).map(([kind, w]) => [kind, w.path] as const),
  ['ReplicationController', ['spec', 'template']],
]);

export interface InjectResult {
  /** The manifests, mutated; empty when there are errors. */
  output: string;
  warnings: string[];
  /** Denials and unreadable documents, each naming its object; non-empty means exit non-zero. */
  errors: string[];
  /** Objects whose pod template was injected. */
  injected: number;
}

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function unescape(token: string): string {
  return token.replace(/~1/g, '/').replace(/~0/g, '~');
}

function nodeAt(doc: Document, path: ReadonlyArray<string | number>): unknown {
  let node: unknown = doc.contents;
  for (const key of path) {
    if (isSeq(node)) node = node.items[Number(key)];
    else if (isMap(node)) node = node.get(String(key), true);
    else return undefined;
  }
  return node;
}

/** Applies one `add`/`replace` operation of the webhook's patch to the YAML document under `base`. */
function applyOp(doc: Document, base: ReadonlyArray<string | number>, op: { op: string; path: string; value?: unknown }): void {
  const tokens = op.path.split('/').slice(1).map(unescape);
  const last = tokens.pop();
  const parent = nodeAt(doc, [...base, ...tokens]);
  if (last === undefined) throw new Error(`cannot apply ${op.op} at the document root`);
  const value = doc.createNode(op.value) as Node;
  if (isSeq(parent)) {
    const index = last === '-' ? parent.items.length : Number(last);
    if (op.op === 'add') parent.items.splice(index, 0, value);
    else parent.items[index] = value;
  } else if (isMap(parent)) {
    parent.set(last, value);
  } else {
    throw new Error(`no object at ${op.path}`);
  }
}

/** A pod spec, or a pod template at one of the places workload kinds keep theirs. */
function holdsPodTemplate(obj: Obj): boolean {
  const spec = isObject(obj.spec) ? obj.spec : undefined;
  if (!spec) return false;
  if (Array.isArray(spec.containers)) return true;
  const template = isObject(spec.template) ? spec.template : isObject(spec.jobTemplate) ? spec.jobTemplate : undefined;
  return template !== undefined && isObject(template.spec);
}

function label(obj: Obj, index: number): string {
  const meta = isObject(obj.metadata) ? obj.metadata : {};
  const name = typeof meta.name === 'string' ? meta.name : typeof meta.generateName === 'string' ? `${meta.generateName}*` : '(unnamed)';
  const ns = typeof meta.namespace === 'string' ? `${meta.namespace}/` : '';
  const kind = typeof obj.kind === 'string' && obj.kind !== '' ? obj.kind : '(no kind)';
  return `${kind} ${ns}${name} (document ${index + 1})`;
}

/** A document on its way through: written back from its value at most once, before its first patch. */
interface DocState {
  doc: Document;
  unaliased: boolean;
}

function injectObject(
  state: DocState,
  at: ReadonlyArray<string | number>,
  obj: Obj,
  where: string,
  config: MutationConfig,
  result: InjectResult,
): void {
  const templatePath = typeof obj.kind === 'string' ? TEMPLATE_PATHS[obj.kind] : undefined;
  if (templatePath === undefined) {
    if (typeof obj.kind !== 'string' || obj.kind === '') {
      result.warnings.push(`${where}: has no kind, so no pod template was looked for; passed through unchanged`);
    } else if (holdsPodTemplate(obj)) {
      result.warnings.push(
        `${where}: ${obj.kind} is not a kind inject knows (${Object.keys(TEMPLATE_PATHS).join(', ')}); its pod template was not mutated here, though the webhook still mutates the pods it makes`,
      );
    }
    return;
  }
  // Annotations on a workload's own metadata never reach its pods.
  const misplaced = templatePath.length > 0 ? misplacedAnnotations(obj, obj.kind as string, templatePath) : undefined;
  if (misplaced !== undefined) result.warnings.push(`${where}: ${misplaced}`);
  const template = valueAt(obj, templatePath);
  if (!isObject(template)) return;
  // A template is a pod without apiVersion/kind; the pipeline reads metadata and spec only.
  const namespace = isObject(obj.metadata) && typeof obj.metadata.namespace === 'string' ? obj.metadata.namespace : undefined;
  const outcome = reviewPod(templatePath.length === 0 ? template : templatePod(template), config, namespace);
  result.warnings.push(...outcome.warnings.map((w) => `${where}: ${w}`));
  if (outcome.outcome === 'denied') result.errors.push(`${where}: ${outcome.message}`);
  if (outcome.outcome !== 'injected') return;
  // Once per document: looking for aliases walks all of it, and a List holds thousands of objects.
  if (!state.unaliased) {
    unalias(state.doc);
    state.unaliased = true;
  }
  for (const op of outcome.patch) applyOp(state.doc, [...at, ...templatePath], op);
  result.injected++;
}

/** Writes a document that uses aliases or merge keys back from its value, each node its own. */
function unalias(doc: Document): void {
  let shared = false;
  visit(doc, {
    Alias: () => {
      shared = true;
      return visit.BREAK;
    },
  });
  if (shared) doc.contents = doc.createNode(doc.toJS({ maxAliasCount: 100 }), { aliasDuplicateObjects: false }) as Node;
}

export function injectManifests(text: string, config: MutationConfig): InjectResult {
  const result: InjectResult = { output: '', warnings: [], errors: [], injected: 0 };
  // Read as kubectl reads manifests (YAML 1.1: `defaultMode: 0644` is octal 420, `<<: *base`
  // merges), so untouched scalars are written back as they came; a YAML 1.2 reading would print
  // that mode back as 644, a different number. kubectl's reader has no sexagesimal numbers and
  // keeps unquoted timestamps as text, so those two YAML 1.1 types are left out.
  const docs = YAML.parseAllDocuments(text, {
    version: '1.1',
    // Repeated keys are found by repeatedKey in one pass; the parser's check is quadratic.
    uniqueKeys: false,
    merge: true,
    customTags: (tags) => tags.filter((t) => typeof t === 'string' || (t.tag !== 'tag:yaml.org,2002:timestamp' && t.format !== 'TIME')),
  });
  if (!Array.isArray(docs)) return result; // an empty stream
  docs.forEach((doc, i) => {
    if (doc.errors.length > 0) {
      result.errors.push(`document ${i + 1}: not valid YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
      return;
    }
    const repeated = repeatedKey(doc);
    if (repeated !== undefined) {
      result.errors.push(`document ${i + 1}: not valid YAML: key ${quote(repeated.key)} appears twice in one mapping`);
      return;
    }
    let obj: unknown;
    try {
      obj = doc.toJS({ maxAliasCount: 100 });
    } catch (e) {
      result.errors.push(`document ${i + 1}: ${(e as Error).message.split('\n')[0]}`);
      return;
    }
    if (!isObject(obj)) return;
    const state: DocState = { doc, unaliased: false };
    if (obj.kind === 'List' && Array.isArray(obj.items)) {
      obj.items.forEach((item, j) => {
        if (isObject(item)) injectObject(state, ['items', j], item, `${label(item, i)} in List item ${j + 1}`, config, result);
      });
    } else {
      injectObject(state, [], obj, label(obj, i), config, result);
    }
  });
  if (result.errors.length === 0) result.output = docs.map((d) => d.toString({ lineWidth: 0 })).join('');
  return result;
}
