// Locates the real parts the integration and e2e suites run against: binaries installed by
// test/setup/install.sh and linked into the checkout's gitignored .cache/bin. In CI a missing
// tool is a failure; elsewhere the caller skips with `missingToolMessage`.

import { accessSync, constants } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN_DIR = join(REPO_ROOT, '.cache', 'bin');
export const LOG_DIR = join(REPO_ROOT, '.cache', 'logs');

export type Tool =
  | 'etcd'
  | 'kube-apiserver'
  | 'kube-controller-manager'
  | 'kube-scheduler'
  | 'kubelet'
  | 'kubectl'
  | 'helm'
  | 'cert-manager-controller'
  | 'cert-manager-cainjector'
  | 'moto_server'
  | 'containerd'
  | 'ctr'
  | 'runc'
  | 'buildah'
  | 'actionlint'
  | 'shellcheck';

export function inCI(): boolean {
  return process.env.CI === 'true';
}

export function missingToolMessage(name: string): string {
  return `${name} is not installed in .cache/bin: run \`npm run test:all\` (or \`bash test/setup/install.sh\`) to install it`;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The absolute path of `.cache/bin/<name>`, or undefined when it is missing (the caller skips
 * with `missingToolMessage(name)`). In CI (`CI=true`) a missing tool throws instead.
 */
export function findTool(name: Tool): string | undefined {
  const path = join(BIN_DIR, name);
  if (isExecutable(path)) return path;
  if (inCI()) throw new Error(missingToolMessage(name));
  return undefined;
}

/** Like findTool for several tools: every path, or the names that are missing (throws in CI). */
export function findTools<T extends Tool>(
  names: readonly T[],
): { paths: Record<T, string>; missing: [] } | { paths: undefined; missing: T[] } {
  const paths = {} as Record<T, string>;
  const missing: T[] = [];
  for (const name of names) {
    const path = join(BIN_DIR, name);
    if (isExecutable(path)) paths[name] = path;
    else missing.push(name);
  }
  if (missing.length === 0) return { paths, missing: [] };
  if (inCI()) throw new Error(missing.map(missingToolMessage).join('\n'));
  return { paths: undefined, missing };
}
