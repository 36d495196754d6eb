// Runs the built CLI's `secrets push` as an operator would, against an AWS endpoint (the
// emulator), with an environment built from nothing but PATH: no credentials or region of the
// machine running the tests leak in.

import { spawn } from 'node:child_process';
import { join } from 'node:path';

export interface PushRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function secretsPush(bundleDir: string, awsEndpoint: string, args: string[], input: string, region = 'us-east-1'): Promise<PushRun> {
  const child = spawn(process.execPath, [join(bundleDir, 'cli.mjs'), 'secrets', 'push', ...args], {
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      AWS_ENDPOINT_URL: awsEndpoint,
      AWS_REGION: region,
      AWS_ACCESS_KEY_ID: 'operator',
      AWS_SECRET_ACCESS_KEY: 'operator',
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin.end(input);
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}
