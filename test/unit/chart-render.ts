// Renders the Helm chart with the real helm binary (test/setup/helm.sh) for the chart specs and
// the end-to-end suite.

import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { REPO_ROOT } from '../helpers/tools.js';

export const CHART_DIR = join(REPO_ROOT, 'charts', 'aws-secret-injector');

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

export type HelmRun = { ok: true; stdout: string; stderr: string } | { ok: false; stdout: string; stderr: string };

export function runHelm(helm: string, args: string[]): HelmRun {
  const r = spawnSync(helm, args, { encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw r.error;
  return { ok: r.status === 0, stdout: r.stdout, stderr: r.stderr };
}

/** `--set`-style pairs and `--set-string` pairs, as helm arguments. */
export function valueArgs(set: Record<string, string | number | boolean> = {}): string[] {
  return Object.entries(set).flatMap(([k, v]) => [typeof v === 'string' ? '--set-string' : '--set', `${k}=${v}`]);
}

/** `helm template` output as objects; throws with helm's message when rendering fails. */
export function renderChart(
  helm: string,
  opts: { release?: string; namespace?: string; set?: Record<string, string | number | boolean>; extra?: string[] } = {},
): K8sObject[] {
  const r = runHelm(helm, [
    'template',
    opts.release ?? 'r',
    CHART_DIR,
    '--namespace',
    opts.namespace ?? 'secrets-system',
    ...valueArgs(opts.set),
    ...(opts.extra ?? []),
  ]);
  if (!r.ok) throw new Error(r.stderr.trim());
  return parseManifests(r.stdout);
}

export function parseManifests(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((d) => {
      if (d.errors.length > 0) throw new Error(`helm rendered invalid YAML: ${d.errors[0]!.message}`);
      return d.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null);
}

/** The one object of a kind (and name, when given); throws when there is not exactly one. */
export function one(objects: K8sObject[], kind: string, name?: string): K8sObject {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return found[0]!;
}

/** The webhook's serving certificate in cert-manager mode (the chart's own CA is a Certificate too). */
export function servingCertificate(objects: K8sObject[]): K8sObject {
  return one(objects.filter((o) => !(o.spec as { isCA?: boolean } | undefined)?.isCA), 'Certificate');
}

/** The values each certificate mode needs to render (the provided mode needs a Secret and a CA). */
export const CERT_MODES: Record<string, Record<string, string>> = {
  'self-managed': { 'certificates.mode': 'self-managed' },
  'cert-manager': { 'certificates.mode': 'cert-manager' },
  provided: {
    'certificates.mode': 'provided',
    'certificates.secretName': 'my-webhook-tls',
    // base64 of a placeholder; only its shape is checked when rendering.
    'webhook.caBundle': Buffer.from('-----BEGIN CERTIFICATE-----\n').toString('base64'),
  },
};
