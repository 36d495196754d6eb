// cert-manager v1.21.2 as test/setup/cert-manager.sh builds it: its CustomResourceDefinitions
// (rendered from its own chart) and its controller and CA injector run as local processes against
// a test cluster, with the cluster's kubeconfig. Each runs as a single instance, so neither takes
// part in a leader election.

import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { parseAllDocuments, stringify } from 'yaml';
import type { Cluster } from './cluster.js';
import { spawnGuarded, stopGuarded } from './guard.js';
import { findTools, inCI, LOG_DIR, missingToolMessage, REPO_ROOT } from './tools.js';

export const CERT_MANAGER_CRDS = join(REPO_ROOT, '.cache', 'cert-manager', 'crds.yaml');

const CRD_NAMES = ['certificaterequests', 'certificates', 'challenges.acme', 'clusterissuers', 'issuers', 'orders.acme'];

/** Why cert-manager cannot run here, or undefined when it can (throws in CI, where it must). */
export function certManagerMissing(): string | undefined {
  const tools = findTools(['cert-manager-controller', 'cert-manager-cainjector']);
  if (tools.missing.length > 0) return tools.missing.map(missingToolMessage).join('\n');
  if (existsSync(CERT_MANAGER_CRDS)) return undefined;
  const message = missingToolMessage("cert-manager's CRDs (.cache/cert-manager/crds.yaml)");
  if (inCI()) throw new Error(message);
  return message;
}

/**
 * cert-manager's CRDs, applied server-side as its chart installs them, once Established. Without
 * `selectableFields` (a cluster before Kubernetes 1.31, which rejects them) the CRDs go without
 * their field selectors: their schemas, what the chart's resources are checked against, are kept.
 */
export async function applyCertManagerCrds(cluster: Cluster, opts: { selectableFields?: boolean } = {}): Promise<void> {
  const strip = opts.selectableFields === false;
  const input = strip
    ? parseAllDocuments(readFileSync(CERT_MANAGER_CRDS, 'utf8'))
        .map((d) => d.toJS())
        .filter(Boolean)
        .map((crd) => {
          for (const v of crd.spec?.versions ?? []) delete v.selectableFields;
          return stringify(crd);
        })
        .join('---\n')
    : undefined;
  const applied = await cluster.kubectl(['apply', '--server-side', '--force-conflicts', '-f', strip ? '-' : CERT_MANAGER_CRDS], { allowFailure: true, input });
  if (applied.code !== 0) throw new Error(`applying cert-manager's CRDs failed: ${applied.stderr}`);
  const crds = CRD_NAMES.map((n) => `crd/${n}.cert-manager.io`);
  const ready = await cluster.kubectl(['wait', '--for=condition=Established', '--timeout=60s', ...crds], { allowFailure: true });
  if (ready.code !== 0) throw new Error(`cert-manager's CRDs not Established: ${ready.stderr}`);
}

export interface CertManager {
  logFiles: string[];
  stop(): Promise<void>;
}

/** Starts cert-manager's controller and CA injector against the cluster. */
export function startCertManager(cluster: Cluster): CertManager {
  mkdirSync(LOG_DIR, { recursive: true });
  const children: ChildProcess[] = [];
  const logFiles: string[] = [];
  for (const part of ['controller', 'cainjector'] as const) {
    const logFile = join(LOG_DIR, `cert-manager-${part}.log`);
    const fd = openSync(logFile, 'w');
    const child = spawnGuarded(join(REPO_ROOT, '.cache', 'bin', `cert-manager-${part}`), [`--kubeconfig=${cluster.kubeconfigPath}`], { out: fd });
    closeSync(fd);
    child.on('error', () => undefined);
    children.push(child);
    logFiles.push(logFile);
  }
  return {
    logFiles,
    stop: async () => {
      await Promise.all(children.map((c) => stopGuarded(c, 5_000)));
    },
  };
}
