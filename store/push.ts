// `aws-secret-injector secrets push`: Secret manifests in, their values written to Secrets Manager
// with the operator's own AWS identity, and the reference-only manifests to commit instead printed
// out. Stages: read -> validate every document (nothing is written unless all of them can be) ->
// write each -> print. Only the manifests go to stdout; progress and errors go to stderr.

import { readFileSync } from 'node:fs';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { Command } from 'commander';
import { parseArgs, processIo as stdio } from '../webhook/inject-cli.js';
import YAML from 'yaml';
import {
  DEFAULT_STORE_PREFIX,
  encodeContent,
  settingsProblems,
  storeName,
  storeTags,
  STORED_IN_ANNOTATION,
  VERSION_ID_ANNOTATION,
  type StoreTarget,
  type WriteProblem,
} from './layout.js';
import { writeContent, WriteError, type Written } from './write.js';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

/** kubectl's copy of the applied manifest: it holds the values, so it never reaches the output. */
export const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';
/** Read no more than this: a Kubernetes Secret holds at most 1 MiB, and a push is a few of them. */
export const MAX_INPUT_BYTES = 64 * 1024 * 1024;
/** Per Secret, retries of throttled calls included. */
const WRITE_DEADLINE_MS = 60_000;

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

export interface PushItem {
  namespace: string;
  name: string;
  target: StoreTarget;
  json: string;
  metadata: Obj;
  type?: string;
}

/**
 * The Secret with no value: its name, namespace, labels and annotations (kubectl's copy of the
 * manifest left out), where its value is kept, and no data.
 */
export function referenceOnly(metadata: Obj, namespace: string, name: string, written: Pick<Written, 'arn' | 'versionId'>, type = 'Opaque'): Obj {
  const annotations = isObject(metadata.annotations) ? { ...(metadata.annotations as Record<string, string>) } : {};
  delete annotations[LAST_APPLIED];
  annotations[STORED_IN_ANNOTATION] = written.arn;
  annotations[VERSION_ID_ANNOTATION] = written.versionId;
  const meta: Obj = { name, namespace };
  if (isObject(metadata.labels)) meta.labels = metadata.labels;
  meta.annotations = annotations;
  return { apiVersion: 'v1', kind: 'Secret', metadata: meta, type };
}

/** Every Secret of the manifests, validated, or every problem with the document it is in. */
export function planPush(text: string, settings: { cluster: string; prefix: string; kmsKeyId?: string; namespace?: string }): { items: PushItem[] } | { errors: string[] } {
  const errors: string[] = [];
  const items: PushItem[] = [];
  const docs = YAML.parseAllDocuments(text, { prettyErrors: false, logLevel: 'error' });
  const objects: Array<{ obj: unknown; where: string }> = [];
  (Array.isArray(docs) ? docs : [docs]).forEach((doc, i) => {
    const where = `document ${i + 1}`;
    if (doc.errors.length > 0) {
      errors.push(`${where}: not valid YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
      return;
    }
    const obj = doc.toJS({ maxAliasCount: 50 }) as unknown;
    if (obj === null || obj === undefined) return;
    if (isObject(obj) && obj.kind === 'List' && Array.isArray(obj.items)) obj.items.forEach((it, j) => objects.push({ obj: it, where: `${where} item ${j + 1}` }));
    else objects.push({ obj, where });
  });
  const seen = new Map<string, string>();
  for (const { obj, where } of objects) {
    const problems: WriteProblem[] = [];
    if (!isObject(obj) || obj.kind !== 'Secret' || (obj.apiVersion !== 'v1' && obj.apiVersion !== undefined)) {
      errors.push(`${where}: not a v1 Secret (kind ${JSON.stringify(isObject(obj) ? obj.kind : typeof obj)}): only Secret manifests are pushed`);
      continue;
    }
    const metadata = isObject(obj.metadata) ? obj.metadata : {};
    const name = typeof metadata.name === 'string' ? metadata.name : '';
    const namespace = typeof metadata.namespace === 'string' && metadata.namespace !== '' ? metadata.namespace : settings.namespace;
    const label = `${where} (Secret ${namespace ?? '?'}/${name || '?'})`;
    if (name === '') {
      errors.push(`${label}: metadata.name is required${typeof metadata.generateName === 'string' ? ' (generateName gives no name to store under)' : ''}`);
      continue;
    }
    if (namespace === undefined) {
      errors.push(`${label}: metadata.namespace is not set: set it, or pass --namespace`);
      continue;
    }
    const type = typeof obj.type === 'string' ? obj.type : 'Opaque';
    if (type !== 'Opaque') problems.push({ code: 'WRITE_REFUSED', subject: 'type', message: `is ${type}; only Opaque Secrets are stored (other types have keys Kubernetes itself reads)` });
    const n = storeName(settings, namespace, name);
    if ('problem' in n) problems.push(n.problem);
    const encoded = encodeContent(obj);
    if ('problems' in encoded) problems.push(...encoded.problems);
    if (problems.length > 0 || !('name' in n) || !('content' in encoded)) {
      errors.push(...problems.map((p) => `${label}: ${p.subject} ${p.message} (${p.code})`));
      continue;
    }
    const other = seen.get(n.name);
    if (other !== undefined) {
      errors.push(`${label}: the same Secret as ${other}`);
      continue;
    }
    seen.set(n.name, where);
    const target: StoreTarget = { name: n.name, tags: storeTags(settings.cluster, namespace, name) };
    if (settings.kmsKeyId !== undefined) target.kmsKeyId = settings.kmsKeyId;
    items.push({ namespace, name, target, json: encoded.content.json, metadata, type });
  }
  if (errors.length === 0 && items.length === 0) errors.push('the input holds no Secret');
  return errors.length > 0 ? { errors } : { items };
}

export interface Io {
  stdin: () => string;
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  /** The Secrets Manager client; the default is the SDK's default chain (profile, SSO, env, ...). */
  client?: (region: string | undefined) => SecretsManagerClient;
}

const processIo: Io = stdio;

export async function runPush(argv: string[], io: Io = processIo): Promise<number> {
  let out = '';
  const cmd = new Command('aws-secret-injector secrets push')
    .description(
      'Writes the values of Kubernetes Secret manifests to AWS Secrets Manager, one secret per Secret named\n' +
        '<prefix>/<cluster>/<namespace>/<name>, with your own AWS identity (the SDK\'s default chain), and prints\n' +
        'the Secrets to commit instead: no data, and the annotations secrets.k8s.aws/stored-in (the ARN) and\n' +
        'secrets.k8s.aws/version-id. Only the manifests go to standard output; progress and errors to standard error.\n' +
        'Nothing is written unless every Secret of the input can be; an unchanged value makes no new version.',
    )
    .requiredOption('--cluster <name>', 'the cluster the Secrets belong to (part of each name and a tag)')
    .option('--prefix <prefix>', 'the first part of each name', DEFAULT_STORE_PREFIX)
    .option('--kms-key-id <key>', 'KMS key (id, ARN or alias) for secrets this creates (default: aws/secretsmanager)')
    .option('-n, --namespace <namespace>', 'namespace of Secrets whose manifest names none')
    .option('--region <region>', 'AWS region (default: the SDK\'s, AWS_REGION or the profile\'s)')
    .requiredOption('-f, --filename <file>', 'manifest file, or - for standard input')
    .allowExcessArguments(false)
    .exitOverride()
    .configureOutput({ writeOut: (s) => (out += s), writeErr: (s) => (out += s) });
  const parsed = parseArgs(cmd, argv, io, () => out);
  if (parsed !== undefined) return parsed;
  const o = cmd.opts<{ cluster: string; prefix: string; kmsKeyId?: string; namespace?: string; region?: string; filename: string }>();
  const bad = settingsProblems(o);
  if (bad.length > 0) {
    for (const p of bad) io.stderr(`secrets push: --${p.subject} ${p.message}\n`);
    return EXIT_USAGE;
  }

  let text: string;
  try {
    if (o.filename !== '-' && readFileSync(o.filename).byteLength > MAX_INPUT_BYTES) throw Object.assign(new Error(), { code: 'larger than 64 MiB' });
    text = o.filename === '-' ? io.stdin() : readFileSync(o.filename, 'utf8');
    if (Buffer.byteLength(text) > MAX_INPUT_BYTES) throw Object.assign(new Error(), { code: 'larger than 64 MiB' });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    io.stderr(`secrets push: cannot read ${o.filename === '-' ? 'standard input' : o.filename}: ${err.code ?? err.message}\n`);
    return EXIT_USAGE;
  }

  const settings: { cluster: string; prefix: string; kmsKeyId?: string; namespace?: string } = { cluster: o.cluster, prefix: o.prefix };
  if (o.kmsKeyId !== undefined) settings.kmsKeyId = o.kmsKeyId;
  if (o.namespace !== undefined) settings.namespace = o.namespace;
  const plan = planPush(text, settings);
  if ('errors' in plan) {
    for (const e of plan.errors) io.stderr(`error: ${e}\n`);
    io.stderr('secrets push: nothing was written\n');
    return EXIT_FAILED;
  }

  const sm = io.client?.(o.region) ?? new SecretsManagerClient({ region: o.region, maxAttempts: 5 });
  const manifests: Obj[] = [];
  const failed: string[] = [];
  for (const item of plan.items) {
    const what = `${item.namespace}/${item.name} -> ${item.target.name}`;
    try {
      const written = await writeContent(sm, item.target, item.json, { signal: AbortSignal.timeout(WRITE_DEADLINE_MS) });
      io.stderr(`${written.outcome} ${what} (version ${written.versionId})\n`);
      manifests.push(referenceOnly(item.metadata, item.namespace, item.name, written, item.type));
    } catch (e) {
      const message = e instanceof WriteError ? `${e.problem.message} (${e.problem.code})` : `${(e as Error).name}: ${(e as Error).message}`;
      io.stderr(`failed ${what}: ${message}\n`);
      failed.push(what);
    }
  }
  sm.destroy();
  if (failed.length > 0) {
    // All or nothing on stdout: a partial set of references, redirected into a file, would be
    // committed as if complete. What was written is stored; running again writes no new version.
    io.stderr(`secrets push: ${failed.length} of ${plan.items.length} Secrets failed; no manifest printed (run again: unchanged values make no new version)\n`);
    return EXIT_FAILED;
  }
  io.stdout(manifests.map((m) => YAML.stringify(m)).join('---\n'));
  return EXIT_OK;
}

/** `aws-secret-injector secrets <subcommand>`. */
export async function run(argv: string[], io: Io = processIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'push') return runPush(rest, io);
  const usage = 'usage: aws-secret-injector secrets push --cluster NAME [--prefix P] [--kms-key-id K] -f FILE|-\n';
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    io.stdout(usage);
    return sub === undefined ? EXIT_USAGE : EXIT_OK;
  }
  io.stderr(`secrets: unknown command ${JSON.stringify(sub)}\n${usage}`);
  return EXIT_USAGE;
}
