// What the integration global set-up provides, and the helpers every file uses: the built
// fetcher run as a child process from a directory with no node_modules, AWS clients pointed at
// the emulator for seeding, and a scratch directory standing in for the secrets volume.

import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SSMClient } from '@aws-sdk/client-ssm';
import { inject } from 'vitest';
import { START_FILES, startCommand } from '../helpers/bundles.js';
import { serialiseSpec, type FetchSpec } from '../../fetcher/spec.js';
import type { IntegrationContext } from './global-setup.js';

// The SDK's notice that later releases need Node 22 is not news in a test log.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

export const ACCOUNT = '123456789012';
export const REGION = 'eu-west-1';

export function integrationContext(): { ctx: IntegrationContext; skip: false } | { ctx: undefined; skip: string } {
  const ctx = inject('integration');
  if (ctx === null) return { ctx: undefined, skip: inject('integrationSkip') };
  return { ctx, skip: false };
}

/** A prefix that keeps one test's secrets apart from another's on the shared emulator. */
export function unique(name: string): string {
  return `${name}-${randomBytes(3).toString('hex')}`;
}

const seedCredentials = { accessKeyId: 'seed', secretAccessKey: 'seed' };

export function seedClients(endpoint: string, region = REGION) {
  return {
    secrets: new SecretsManagerClient({ region, endpoint, credentials: seedCredentials }),
    ssm: new SSMClient({ region, endpoint, credentials: seedCredentials }),
  };
}

/** A header.payload.signature token shaped like a projected service account token. */
export function webIdentityToken(sub = 'system:serviceaccount:team-a:web'): string {
  const part = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${part({ alg: 'RS256', kid: 'test' })}.${part({ iss: 'https://oidc.example', sub, aud: 'sts.amazonaws.com', exp: 4102444800 })}.${randomBytes(32).toString('base64url')}`;
}

/**
 * How the fetcher is started: the executable (as the image does), the bundle with Node.js (start.cjs
 * with its code cache, or the plain script), or through the CLI.
 */
export type FetcherBundle = 'fetcher' | 'start.cjs' | 'fetcher.cjs' | 'cli.mjs';

export interface FetcherRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** What the fetcher wrote to its termination message file ('' if nothing). */
  termination: string;
  dir: string;
  ms: number;
}

export class Scratch {
  readonly root = mkdtempSync(join(tmpdir(), 'fetcher-it-'));

  /**
   * A fetcher bundle (start.cjs with the files it runs, or the plain script) copied into a directory
   * with no node_modules anywhere above it. The executable needs nothing beside it, and the CLI
   * bundle loads its subcommands from chunks beside it: both run where they were built.
   */
  bundlePath(ctx: IntegrationContext, name: FetcherBundle = 'fetcher'): string {
    if (name === 'cli.mjs' || name === 'fetcher') return join(ctx.bundleDir, name);
    for (const f of name === 'start.cjs' ? START_FILES : [name]) {
      if (!existsSync(join(this.root, f))) copyFileSync(join(ctx.bundleDir, f), join(this.root, f));
    }
    return join(this.root, name);
  }

  tokenFile(token = webIdentityToken()): string {
    const p = join(this.root, `token-${randomBytes(3).toString('hex')}`);
    writeFileSync(p, token);
    return p;
  }

  remove(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}

/**
 * Runs the fetcher as the init container would: `fetcher fetch --dir <scratch>` (or the
 * bundle or CLI named in `opts.bundle`) with
 * the spec in SECRET_INJECTOR_SPEC. The environment is built from nothing but PATH, so no
 * credentials, profile or region of the machine running the tests leak in.
 */
export async function runFetcher(
  ctx: IntegrationContext,
  scratch: Scratch,
  spec: Omit<FetchSpec, 'version' | 'dir' | 'mode'> & Partial<Pick<FetchSpec, 'mode'>>,
  /** Added to the base environment; a variable set to undefined is removed from it. */
  env: Record<string, string | undefined>,
  opts: {
    bundle?: FetcherBundle;
    endpoint?: string;
    killAfterMs?: number;
    /** The volume's directory (default: a new one under the scratch directory). */
    dir?: string;
    /** A command prefix the fetcher runs under (a memory group's). */
    wrap?: string[];
  } = {},
): Promise<FetcherRun> {
  const dir = opts.dir ?? mkdtempSync(join(scratch.root, 'volume-'));
  const termination = join(scratch.root, `termination-${randomBytes(3).toString('hex')}`);
  const full: FetchSpec = { version: 1, dir: '/tmp', mode: 0o444, ...spec };
  const bundle = scratch.bundlePath(ctx, opts.bundle);
  const started = Date.now();
  const base: Record<string, string | undefined> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: scratch.root,
    AWS_ENDPOINT_URL: opts.endpoint ?? ctx.awsEndpoint,
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_CONFIG_FILE: join(scratch.root, 'no-config'),
    AWS_SHARED_CREDENTIALS_FILE: join(scratch.root, 'no-credentials'),
    SECRET_INJECTOR_SPEC: serialiseSpec(full),
    SECRET_INJECTOR_POD_NAME: 'web-7d9f8c6b5-x2k4q',
    SECRET_INJECTOR_POD_NAMESPACE: 'team-a',
    SECRET_INJECTOR_TERMINATION_LOG: termination,
    ...env,
  };
  const command = [...(opts.wrap ?? []), ...startCommand(bundle), 'fetch', '--dir', dir];
  const child = spawn(command[0]!, command.slice(1), {
    cwd: scratch.root,
    env: Object.fromEntries(Object.entries(base).filter((e): e is [string, string] => e[1] !== undefined)),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  // A fetcher that hangs is a failure to see (code null), not a test timeout.
  const killer = setTimeout(() => child.kill('SIGKILL'), opts.killAfterMs ?? 45_000);
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  clearTimeout(killer);
  return {
    code,
    stdout,
    stderr,
    termination: existsSync(termination) ? readFileSync(termination, 'utf8') : '',
    dir,
    ms: Date.now() - started,
  };
}
