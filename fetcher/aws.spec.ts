import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createAwsApi, sessionName } from './aws.js';
import { CredentialError } from './fetch.js';

describe('sessionName', () => {
  it.each<[string | undefined, string | undefined, string]>([
    ['team-a', 'web-7d9f8c6b5-x2k4q', 'team-a.web-7d9f8c6b5-x2k4q'],
    ['ns', undefined, 'ns'],
    [undefined, undefined, 'aws-secret-injector'],
    ['', 'x', 'aws-secret-injector'],
    ['a', 'b c/d:e', 'a.b-c-d-e'],
    ['n'.repeat(40), 'p'.repeat(40), `${'n'.repeat(40)}.${'p'.repeat(23)}`],
  ])('%s / %s -> %s', (ns, name, expected) => {
    const s = sessionName(ns, name);
    expect(s).toBe(expected);
    expect(s).toMatch(/^[\w+=,.@-]{2,64}$/);
  });
});

describe('createAwsApi credentials', () => {
  // The EKS Pod Identity agent stands in as an in-process server answering a cut-off body.
  it('never quotes a credentials response that is not JSON (it holds keys)', async () => {
    // JSON.parse's message quotes the start of such a body: "Unexpected token 'A', "ASIAQUOTED"... is not valid JSON".
    const body = 'ASIAQUOTED KEY-MATERIAL-1234567890';
    const server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(body));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    const saved = { ...process.env };
    for (const k of Object.keys(process.env)) if (k.startsWith('AWS_')) delete process.env[k];
    Object.assign(process.env, {
      AWS_CONTAINER_CREDENTIALS_FULL_URI: `http://127.0.0.1:${port}/creds`,
      AWS_CONFIG_FILE: '/nonexistent/config',
      AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/credentials',
      AWS_EC2_METADATA_DISABLED: 'true',
    });
    try {
      const api = createAwsApi({ source: { kind: 'pod-identity', fullUri: `http://127.0.0.1:${port}/creds` }, sessionName: 's', stsRegion: 'eu-west-1', callTimeoutMs: 2_000, maxAttempts: 1 });
      const err = await api.getSecretValue('eu-west-1', { SecretId: 'x' }, new AbortController().signal).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CredentialError);
      expect((err as CredentialError).message).not.toMatch(/ASIAQUOTED|KEY-MATERIAL/);
      expect((err as CredentialError).message).toMatch(/not valid JSON/);
    } finally {
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
      Object.assign(process.env, saved);
      server.close();
    }
  }, 15_000);
});
