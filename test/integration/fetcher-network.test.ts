// The fetcher bundle in the networks clusters really have: an egress proxy (a CONNECT proxy that
// records every host asked for and reaches nothing beyond this machine), an endpoint signed by a
// private CA (a TLS front of the emulator), FIPS endpoints, and the STS session IRSA opens.

import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CreateSecretCommand } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateCertificates } from '../../certs/generate.js';
import { startAwsProxy, type AwsProxy } from '../helpers/aws-proxy.js';
import { startConnectProxy } from '../helpers/connect-proxy.js';
import { ACCOUNT, integrationContext, REGION, runFetcher, Scratch, seedClients, unique } from './context.js';

const { ctx, skip } = integrationContext();
// Static keys stand for an identity; the fetcher takes them only with the node-credentials opt-in.
const keys = { AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE', AWS_SECRET_ACCESS_KEY: 'example', AWS_REGION: REGION, SECRET_INJECTOR_NODE_CREDENTIALS: 'allow' };
const POD_SESSION = 'team-a.web-7d9f8c6b5-x2k4q';

describe.skipIf(skip !== false)(`fetcher in real networks${skip ? ` — skipped: ${skip}` : ''}`, () => {
  const c = ctx!;
  const scratch = new Scratch();
  const { secrets } = seedClients(c?.awsEndpoint ?? 'http://127.0.0.1:1');
  let front: AwsProxy;
  let tls: { key: string; cert: string };
  let caFile: string;
  let name: string;

  beforeAll(async () => {
    // An HTTPS endpoint whose certificate a private CA signed: what a private endpoint, or a
    // TLS-inspecting proxy, presents.
    const made = generateCertificates({ ipAddresses: ['127.0.0.1'], dnsNames: ['localhost'], keyBits: 2048 });
    tls = { key: made.key, cert: made.cert };
    const dir = mkdtempSync(join(scratch.root, 'ca-'));
    caFile = join(dir, 'ca.crt');
    writeFileSync(caFile, made.caCert);
    front = await startAwsProxy(c.awsEndpoint, undefined, { tls });
    name = unique('net');
    await secrets.send(new CreateSecretCommand({ Name: name, SecretString: 'through-the-network' }));
  });
  afterAll(async () => {
    await front?.close();
    scratch.remove();
  });

  it('reaches a private-CA endpoint only with the CA bundle', async () => {
    const spec = { items: [{ ref: name, file: 'f' }], timeouts: { maxAttempts: 1 } };
    const without = await runFetcher(c, scratch, spec, keys, { endpoint: front.endpoint });
    expect(without.code).toBe(1);
    expect(without.termination).toMatch(/AWS error code: (SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)/);
    expect(without.termination).toContain('FETCHER_CA_BUNDLE_CONFIGMAP');

    const withCa = await runFetcher(c, scratch, spec, { ...keys, NODE_EXTRA_CA_CERTS: caFile }, { endpoint: front.endpoint });
    expect(withCa.stderr).toBe('');
    expect(withCa.code).toBe(0);
    expect(readFileSync(join(withCa.dir, 'f'), 'utf8')).toBe('through-the-network');
  });

  it('refuses a CA bundle that holds no certificate, naming it', async () => {
    const bad = join(scratch.root, 'not-a-ca.pem');
    writeFileSync(bad, 'not a certificate\n');
    const run = await runFetcher(c, scratch, { items: [{ ref: name, file: 'f' }] }, { ...keys, NODE_EXTRA_CA_CERTS: bad });
    expect(run.code).toBe(1);
    expect(run.termination).toContain(`FETCH_NETWORK: NODE_EXTRA_CA_CERTS ${bad} holds no PEM certificate`);
  });

  it('sends every AWS call, IRSA token exchange included, through HTTPS_PROXY', async () => {
    const proxy = await startConnectProxy();
    const before = front.calls.length;
    try {
      const run = await runFetcher(
        c,
        scratch,
        { items: [{ ref: name, file: 'f' }] },
        {
          AWS_ROLE_ARN: `arn:aws:iam::${ACCOUNT}:role/irsa-web`,
          AWS_WEB_IDENTITY_TOKEN_FILE: scratch.tokenFile(),
          AWS_REGION: REGION,
          NODE_EXTRA_CA_CERTS: caFile,
          HTTPS_PROXY: proxy.url,
        },
        { endpoint: front.endpoint },
      );
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      const calls = front.calls.slice(before);
      expect(calls.map((x) => x.operation)).toEqual(['sts.AssumeRoleWithWebIdentity', 'secretsmanager.GetSecretValue']);
      // Every call arrived on a connection the proxy opened, and the proxy was asked for nothing else.
      for (const call of calls) expect(proxy.upstreamPorts.has(call.remotePort), call.operation).toBe(true);
      expect(new Set(proxy.requests.map((r) => `${r.method} ${r.target}`))).toEqual(new Set([`CONNECT ${new URL(front.endpoint).host}`]));
    } finally {
      await proxy.close();
    }
  });

  it('sends calls to a plain-http endpoint through HTTP_PROXY', async () => {
    const proxy = await startConnectProxy();
    const plain = await startAwsProxy(c.awsEndpoint);
    try {
      const run = await runFetcher(c, scratch, { items: [{ ref: name, file: 'f' }] }, { ...keys, HTTP_PROXY: proxy.url }, { endpoint: plain.endpoint });
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(plain.calls.map((x) => x.operation)).toEqual(['secretsmanager.GetSecretValue']);
      for (const call of plain.calls) expect(proxy.upstreamPorts.has(call.remotePort)).toBe(true);
      expect(proxy.requests).toEqual([{ method: 'POST', target: new URL(plain.endpoint).host }]);
    } finally {
      await plain.close();
      await proxy.close();
    }
  });

  it('uses an https:// proxy, trusting its certificate through the CA bundle', async () => {
    const proxy = await startConnectProxy({ tls });
    const before = front.calls.length;
    try {
      const run = await runFetcher(
        c,
        scratch,
        { items: [{ ref: name, file: 'f' }] },
        { ...keys, NODE_EXTRA_CA_CERTS: caFile, HTTPS_PROXY: proxy.url },
        { endpoint: front.endpoint },
      );
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      const calls = front.calls.slice(before);
      expect(calls.map((x) => x.operation)).toEqual(['secretsmanager.GetSecretValue']);
      for (const call of calls) expect(proxy.upstreamPorts.has(call.remotePort)).toBe(true);
    } finally {
      await proxy.close();
    }
  });

  it('goes direct to the hosts NO_PROXY covers', async () => {
    const proxy = await startConnectProxy();
    const before = front.calls.length;
    try {
      const run = await runFetcher(
        c,
        scratch,
        { items: [{ ref: name, file: 'f' }] },
        { ...keys, NODE_EXTRA_CA_CERTS: caFile, HTTPS_PROXY: proxy.url, NO_PROXY: 'localhost,127.0.0.1' },
        { endpoint: front.endpoint },
      );
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(front.calls.slice(before).map((x) => x.operation)).toEqual(['secretsmanager.GetSecretValue']);
      expect(proxy.requests).toEqual([]);
    } finally {
      await proxy.close();
    }
  });

  it.each([
    [{}, 'secretsmanager.eu-west-1.amazonaws.com', 'sts.eu-west-1.amazonaws.com'],
    [{ AWS_USE_FIPS_ENDPOINT: 'true' }, 'secretsmanager-fips.eu-west-1.amazonaws.com', 'sts-fips.eu-west-1.amazonaws.com'],
    // Secrets Manager's endpoint rules keep its usual host (it answers over IPv6 already); STS moves to api.aws.
    [{ AWS_USE_DUALSTACK_ENDPOINT: 'true' }, 'secretsmanager.eu-west-1.amazonaws.com', 'sts.eu-west-1.api.aws'],
  ])('with %o the SDK resolves %s (and %s for the report), seen by the proxy, never reached', async (env, host, stsHost) => {
    const proxy = await startConnectProxy();
    try {
      const run = await runFetcher(
        c,
        scratch,
        { items: [{ ref: name, file: 'f' }], timeouts: { maxAttempts: 1 } },
        // No endpoint URL: the SDK resolves AWS's own hosts.
        { ...keys, ...env, HTTPS_PROXY: proxy.url, AWS_ENDPOINT_URL: undefined },
      );
      expect(run.code).toBe(1);
      // The failure report's GetCallerIdentity follows the same switch.
      expect(new Set(proxy.requests.map((r) => `${r.method} ${r.target}`))).toEqual(new Set([`CONNECT ${host}:443`, `CONNECT ${stsHost}:443`]));
    } finally {
      await proxy.close();
    }
  });

  it('refuses a proxy that is not a URL, naming the variable', async () => {
    const run = await runFetcher(c, scratch, { items: [{ ref: name, file: 'f' }] }, { ...keys, HTTPS_PROXY: 'proxy.internal:3128' });
    expect(run.code).toBe(1);
    expect(run.termination).toContain('FETCH_NETWORK: HTTPS_PROXY must be an http:// or https:// proxy URL');
  });

  it("names IRSA's STS session after the pod, as CloudTrail and GetCallerIdentity show it", async () => {
    const sts = await startAwsProxy(c.awsEndpoint);
    try {
      const missing = unique('missing');
      const run = await runFetcher(
        c,
        scratch,
        { items: [{ ref: missing, file: 'f' }] },
        { AWS_ROLE_ARN: `arn:aws:iam::${ACCOUNT}:role/irsa-web`, AWS_WEB_IDENTITY_TOKEN_FILE: scratch.tokenFile(), AWS_REGION: REGION },
        { endpoint: sts.endpoint },
      );
      expect(run.code).toBe(1);
      const exchange = sts.calls.find((x) => x.operation === 'sts.AssumeRoleWithWebIdentity');
      expect(exchange?.params.RoleSessionName).toBe(POD_SESSION);
      expect(run.termination).toContain(`Identity: arn:aws:sts::${ACCOUNT}:assumed-role/irsa-web/${POD_SESSION}.`);
    } finally {
      await sts.close();
    }
  });
});
