// The init container's start-up path loads only the fetcher and the three AWS clients it uses:
// no webhook, HTTP server, YAML, certificate or Kubernetes code (checked on esbuild's metafile of
// the same entry scripts/bundle.mjs builds).

import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';

describe('fetcher bundle', () => {
  it('holds no webhook, fastify, YAML, certificate or Kubernetes code', async () => {
    const result = await build({
      entryPoints: ['fetcher/bin.ts'],
      bundle: true,
      platform: 'node',
      target: 'node24',
      format: 'cjs',
      mainFields: ['module', 'main'],
      write: false,
      metafile: true,
      outfile: 'fetcher.cjs',
      logLevel: 'silent',
    });
    const inputs = Object.keys(result.metafile.inputs);
    const forbidden = inputs.filter((p) =>
      /^(webhook|certs|bin)\/|node_modules\/(fastify|@fastify|yaml|node-forge|pino|@kubernetes|prom-client|commander|ajv|fast-json-patch)\//.test(p),
    );
    expect(forbidden).toEqual([]);
    const awsClients = new Set(inputs.map((p) => /node_modules\/@aws-sdk\/(client-[a-z-]+)\//.exec(p)?.[1]).filter(Boolean));
    expect([...awsClients].sort()).toEqual(['client-secrets-manager', 'client-ssm', 'client-sts']);
  });
});
