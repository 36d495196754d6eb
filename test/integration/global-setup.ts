// Starts the AWS API emulator (moto in server mode) once for the integration suite, builds the
// bundles if they are missing, and hands their coordinates to the test files (vitest
// provide/inject; test/integration/context.ts reads them). moto is stopped in the teardown.
//
// In CI (CI=true) a missing moto fails the run; elsewhere the suite skips with a message saying
// how to install it.

import type { TestProject } from 'vitest/node';
import { ensureBundles } from '../helpers/bundles.js';
import { startMoto } from '../helpers/moto.js';
import { findTool, missingToolMessage } from '../helpers/tools.js';

export interface IntegrationContext {
  /** http://127.0.0.1:<port> of moto (Secrets Manager, SSM, STS). */
  awsEndpoint: string;
  /** Absolute directory holding fetcher (the executable), fetcher.cjs, start.cjs, fetcher.cache and cli.mjs. */
  bundleDir: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    /** Present unless the suite is skipped. */
    integration: IntegrationContext | null;
    /** Why the suite is skipped (outside CI, moto is not installed). */
    integrationSkip: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const moto = findTool('moto_server');
  if (moto === undefined) {
    const message = missingToolMessage('moto_server');
    console.warn(`integration suite skipped: ${message}`);
    project.provide('integration', null);
    project.provide('integrationSkip', message);
    return async () => undefined;
  }
  const bundleDir = ensureBundles();
  const server = await startMoto(moto);
  project.provide('integration', { awsEndpoint: server.endpoint, bundleDir });
  project.provide('integrationSkip', '');
  return () => server.stop();
}
