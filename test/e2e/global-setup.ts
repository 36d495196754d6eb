// Starts etcd, kube-apiserver, kube-controller-manager and the AWS API emulator once for the e2e
// suite, builds the bundles if they are missing, and hands their coordinates to the test files
// (vitest provide/inject; test/e2e/context.ts reads them). Everything started here is stopped in
// the teardown, even when tests fail.
//
// In CI (CI=true) a missing tool fails the run; elsewhere the suite skips with a message saying
// how to install it.

import type { TestProject } from 'vitest/node';
import { ensureBundles } from '../helpers/bundles.js';
import { kubeRelease, startControlPlane, type ClusterInfo, type ControlPlane } from '../helpers/cluster.js';
import { startMoto, type MotoServer } from '../helpers/moto.js';
import { findTools, missingToolMessage } from '../helpers/tools.js';

export interface E2EContext {
  cluster: ClusterInfo;
  /** http://127.0.0.1:<port> of moto (Secrets Manager, SSM, STS). */
  awsEndpoint: string;
  /** Directory holding cli.mjs and fetcher, the fetcher image's executable (and the bundle it is compiled from). */
  bundleDir: string;
  /** Set-up timings in ms, for the report. */
  timings: Record<string, number>;
}

declare module 'vitest' {
  export interface ProvidedContext {
    /** Present unless the suite is skipped. */
    e2e: E2EContext | null;
    /** Why the suite is skipped (outside CI, a tool is missing). */
    e2eSkip: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const tools = findTools(['etcd', 'kube-apiserver', 'kube-controller-manager', 'kubectl', 'moto_server'] as const);
  if (!tools.paths) {
    const message = tools.missing.map(missingToolMessage).join('\n');
    console.warn(`e2e suite skipped:\n${message}`);
    project.provide('e2e', null);
    project.provide('e2eSkip', message);
    return async () => undefined;
  }
  const timings: Record<string, number> = {};
  const t0 = Date.now();
  const dir = ensureBundles();
  timings.bundles = Date.now() - t0;

  let moto: MotoServer | undefined;
  let plane: ControlPlane | undefined;
  const teardown = async () => {
    await Promise.allSettled([plane?.stop(), moto?.stop()]);
  };
  try {
    const t1 = Date.now();
    const motoStarted = startMoto(tools.paths.moto_server).then((m) => {
      timings.moto = Date.now() - t1;
      return m;
    });
    const planeStarted = startControlPlane().then((p) => {
      timings.controlPlane = Date.now() - t1;
      return p;
    });
    const [m, p] = await Promise.allSettled([motoStarted, planeStarted]);
    if (m.status === 'fulfilled') moto = m.value;
    if (p.status === 'fulfilled') plane = p.value;
    if (m.status === 'rejected') throw m.reason;
    if (p.status === 'rejected') throw p.reason;
  } catch (e) {
    await teardown();
    throw e;
  }
  const { kubectl: _k, helm: _h, stop: _s, kubeConfig: _c, ...cluster } = plane!;
  console.log(`e2e: Kubernetes ${kubeRelease().version} control plane at ${cluster.server} and moto at ${moto!.endpoint} ready (${JSON.stringify(timings)})`);
  project.provide('e2e', { cluster, awsEndpoint: moto!.endpoint, bundleDir: dir, timings });
  project.provide('e2eSkip', '');
  return teardown;
}
