// ensureSecret / ensureCaBundle through @kubernetes/client-node against a small in-process API
// that can lose a race at an exact moment (a rival write between our read and our write), which a
// real apiserver cannot be made to do on demand. The same code runs against a real kube-apiserver
// in test/e2e/certs-bootstrap.test.ts.

import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig, type V1MutatingWebhookConfiguration, type V1Secret } from '@kubernetes/client-node';
import jsonpatch, { type Operation } from 'fast-json-patch';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { run } from './cli.js';
import { clientsFrom, decide, ensureCaBundle, ensureSecret, issue, reconcile, type BootstrapOptions, type Clients } from './bootstrap.js';

const opts: BootstrapOptions = {
  namespace: 'platform',
  secretName: 'hook-tls',
  webhookConfigName: 'hook',
  serviceName: 'hook',
  caOverlapSeconds: 600,
};
const SECRET_PATH = '/api/v1/namespaces/platform/secrets';
const MWC_PATH = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/hook';
const quiet = { info: () => undefined, warn: () => undefined, debug: () => undefined };

interface FakeApi {
  secret?: V1Secret;
  config?: V1MutatingWebhookConfiguration;
  rv: number;
  /** Runs before each request is handled: the place for a rival's write. */
  before?: (method: string, path: string) => void;
  /** An error status to answer this request with instead (a fault of the apiserver). */
  fail?: (method: string, path: string) => number | undefined;
  calls: string[];
}

function status(code: number, reason: string, message: string) {
  return { kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message };
}

async function body(req: IncomingMessage): Promise<unknown> {
  let raw = '';
  for await (const chunk of req) raw += String(chunk);
  return raw ? JSON.parse(raw) : undefined;
}

function startFake(api: FakeApi): Promise<Server> {
  const server = createServer(async (req, res) => {
    const send = (code: number, obj: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(obj));
    };
    const path = (req.url ?? '').split('?')[0]!;
    const method = req.method ?? 'GET';
    api.calls.push(`${method} ${path}`);
    api.before?.(method, path);
    const input = await body(req);
    const failed = api.fail?.(method, path);
    if (failed !== undefined) return send(failed, status(failed, 'InternalError', 'etcdserver: request timed out'));
    if (path === `${SECRET_PATH}/hook-tls`) {
      if (method === 'GET') return api.secret ? send(200, api.secret) : send(404, status(404, 'NotFound', 'secrets "hook-tls" not found'));
      if (method === 'PUT') {
        const s = input as V1Secret;
        if (!api.secret) return send(404, status(404, 'NotFound', 'not found'));
        if (s.metadata?.resourceVersion !== api.secret.metadata?.resourceVersion) {
          return send(409, status(409, 'Conflict', 'the object has been modified; please apply your changes to the latest version and try again'));
        }
        api.secret = { ...s, metadata: { ...s.metadata, resourceVersion: String(++api.rv) } };
        return send(200, api.secret);
      }
    }
    if (path === SECRET_PATH && method === 'POST') {
      if (api.secret) return send(409, status(409, 'AlreadyExists', 'secrets "hook-tls" already exists'));
      const s = input as V1Secret;
      api.secret = { ...s, metadata: { ...s.metadata, resourceVersion: String(++api.rv) } };
      return send(201, api.secret);
    }
    if (path === MWC_PATH) {
      if (!api.config) return send(404, status(404, 'NotFound', 'not found'));
      if (method === 'GET') return send(200, api.config);
      if (method === 'PATCH') {
        try {
          api.config = jsonpatch.applyPatch(structuredClone(api.config), input as Operation[], true, false).newDocument;
        } catch (e) {
          return send(422, status(422, 'Invalid', `the server rejected our request due to an error in our request: ${(e as Error).message}`));
        }
        return send(200, api.config);
      }
    }
    send(404, status(404, 'NotFound', `no route ${method} ${path}`));
  });
  server.listen(0, '127.0.0.1');
  return once(server, 'listening').then(() => server);
}

function config(caBundle?: string): V1MutatingWebhookConfiguration {
  const hook = (name: string) => ({
    name,
    admissionReviewVersions: ['v1'],
    sideEffects: 'None',
    clientConfig: { url: 'https://127.0.0.1:1/mutate', ...(caBundle ? { caBundle } : {}) },
  });
  return { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration', metadata: { name: 'hook' }, webhooks: [hook('a.example.com'), hook('b.example.com')] };
}

describe('ensureSecret and ensureCaBundle through the Kubernetes client', () => {
  let api: FakeApi;
  let server: Server;
  let clients: Clients;

  beforeEach(async () => {
    api = { rv: 100, calls: [], config: config() };
    server = await startFake(api);
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
      users: [{ name: 'u', token: 't' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    clients = clientsFrom(kc);
  });
  afterEach(() => {
    server.close();
  });

  it('creates the Secret when missing and patches caBundle of every entry', async () => {
    const { material, outcome, patched } = await reconcile(clients, opts, quiet);
    expect(outcome).toBe('created');
    expect(patched).toBe(2);
    expect(api.secret?.type).toBe('kubernetes.io/tls');
    const ca = Buffer.from(api.secret!.data!['ca.crt']!, 'base64').toString();
    expect(material.caBundle).toBe(ca);
    expect(api.config!.webhooks!.map((w) => Buffer.from(w.clientConfig.caBundle!, 'base64').toString())).toEqual([ca, ca]);
    // a second pass writes nothing
    api.calls = [];
    expect(await reconcile(clients, opts, quiet)).toMatchObject({ outcome: 'adopted', patched: 0 });
    expect(api.calls).toEqual([`GET ${SECRET_PATH}/hook-tls`, `GET ${MWC_PATH}`]);
  });

  it('loses a create race (409 AlreadyExists), re-reads and adopts the winner', async () => {
    const rival = { ...issue(undefined, false, opts, new Date()), metadata: { name: 'hook-tls', namespace: 'platform', resourceVersion: '7' } };
    api.before = (method) => {
      if (method === 'POST' && !api.secret) api.secret = rival;
    };
    const { material, outcome } = await ensureSecret(clients, opts, quiet);
    expect(outcome).toBe('adopted');
    expect(material.cert).toBe(Buffer.from(rival.data!['tls.crt']!, 'base64').toString());
    expect(api.calls.filter((c) => c.startsWith('POST'))).toHaveLength(1);
  });

  it('loses an update race (409 Conflict), re-reads and adopts the rival renewal', async () => {
    const now = new Date();
    const stale = { ...issue(undefined, false, { ...opts, validityDays: 10 }, now), metadata: { name: 'hook-tls', resourceVersion: '5' } };
    api.secret = stale;
    const rival = { ...issue(stale, true, opts, now), metadata: { name: 'hook-tls', resourceVersion: '6' } };
    api.before = (method) => {
      if (method === 'PUT' && api.secret === stale) api.secret = rival;
    };
    const { material, outcome } = await ensureSecret(clients, opts, quiet);
    expect(outcome).toBe('adopted');
    expect(material.cert).toBe(Buffer.from(rival.data!['tls.crt']!, 'base64').toString());
    expect(material.resourceVersion).toBe('6');
  });

  it('renews near expiry with an update carrying the resourceVersion read', async () => {
    const now = new Date();
    api.secret = { ...issue(undefined, false, { ...opts, validityDays: 10 }, now), metadata: { name: 'hook-tls', resourceVersion: '5' } };
    const oldCert = api.secret.data!['tls.crt'];
    const oldCa = api.secret.data!['ca.crt'];
    const { outcome } = await ensureSecret(clients, opts, quiet);
    expect(outcome).toBe('renewed');
    expect(api.secret.data!['tls.crt']).not.toBe(oldCert);
    expect(api.secret.data!['ca.crt']).toBe(oldCa); // same CA: caBundle unchanged
    expect(api.calls.filter((c) => c.startsWith('PUT'))).toHaveLength(1);
    expect(decide(api.secret, opts, now).action).toBe('adopt');
  });

  it('a Secret emptied under running replicas (helm upgrade --force) gets a new CA, and the CA the configuration trusted stays in the bundle', async () => {
    const before = issue(undefined, false, opts, new Date());
    const oldCa = Buffer.from(before.data!['ca.crt']!, 'base64').toString();
    const expired = issue(undefined, false, { ...opts, caValidityDays: 1, validityDays: 1 }, new Date(Date.now() - 3 * 86_400_000));
    const expiredCa = Buffer.from(expired.data!['ca.crt']!, 'base64').toString();
    const leaf = Buffer.from(before.data!['tls.crt']!, 'base64').toString(); // not a CA: never carried over
    api.config = config(Buffer.from(`${oldCa}${expiredCa}${leaf}`).toString('base64'));
    api.secret = { apiVersion: 'v1', kind: 'Secret', type: 'Opaque', metadata: { name: 'hook-tls', namespace: 'platform', resourceVersion: '5' } };
    const { material, outcome } = await reconcile(clients, opts, quiet);
    expect(outcome).toBe('renewed');
    const newCa = Buffer.from(api.secret.data!['ca.crt']!, 'base64').toString();
    expect(newCa).not.toBe(oldCa);
    expect(material.caBundle).toBe(`${newCa}${oldCa}`);
    expect(api.config!.webhooks!.map((w) => Buffer.from(w.clientConfig.caBundle!, 'base64').toString())).toEqual([material.caBundle, material.caBundle]);
    expect(api.secret.metadata!.annotations!['secrets.k8s.aws/previous-ca-until']).toBeDefined();
    // Once the overlap is over the previous CA leaves the bundle.
    const later = new Date(Date.now() + 601_000);
    expect(decide(api.secret, { ...opts, now: () => later }, later).action).toBe('drop-previous-ca');
  });

  it('Secret and caBundle both wiped (helm upgrade --force): the CA this replica serves under stays in the new bundle', async () => {
    const served = Buffer.from(issue(undefined, false, opts, new Date()).data!['ca.crt']!, 'base64').toString();
    api.secret = { apiVersion: 'v1', kind: 'Secret', type: 'Opaque', metadata: { name: 'hook-tls', namespace: 'platform', resourceVersion: '5' } };
    const { material, outcome } = await reconcile(clients, opts, quiet, served);
    expect(outcome).toBe('renewed');
    const newCa = Buffer.from(api.secret.data!['ca.crt']!, 'base64').toString();
    expect(material.caBundle).toBe(`${newCa}${served}`);
    expect(api.config!.webhooks!.every((w) => w.clientConfig.caBundle === Buffer.from(material.caBundle).toString('base64'))).toBe(true);
  });

  it('a Secret emptied while the configuration cannot be read: the pass fails without writing, and the next keeps the trusted CA', async () => {
    const oldCa = Buffer.from(issue(undefined, false, opts, new Date()).data!['ca.crt']!, 'base64').toString();
    api.config = config(Buffer.from(oldCa).toString('base64'));
    api.secret = { apiVersion: 'v1', kind: 'Secret', type: 'Opaque', metadata: { name: 'hook-tls', namespace: 'platform', resourceVersion: '5' } };
    api.fail = (method, path) => (method === 'GET' && path === MWC_PATH ? 500 : undefined);
    await expect(reconcile(clients, opts, quiet)).rejects.toMatchObject({
      code: 'CERTS_KUBERNETES',
      message: expect.stringMatching(/^reading the CAs MutatingWebhookConfiguration hook trusts, before replacing the CA of Secret platform\/hook-tls: HTTP 500: /),
    });
    expect(api.calls.filter((c) => c.startsWith('PUT'))).toEqual([]);
    expect(api.secret.data).toBeUndefined();
    api.fail = undefined;
    const { material } = await reconcile(clients, opts, quiet);
    const newCa = Buffer.from(api.secret.data!['ca.crt']!, 'base64').toString();
    expect(material.caBundle).toBe(`${newCa}${oldCa}`);
  });

  it('a Secret deleted by hand: the new CA trusts nothing else when the configuration trusted nothing', async () => {
    const { material, outcome } = await reconcile(clients, opts, quiet);
    expect(outcome).toBe('created');
    expect(material.caBundle).toBe(Buffer.from(api.secret!.data!['ca.crt']!, 'base64').toString());
    expect(api.secret!.data!['ca-previous.crt']).toBeUndefined();
  });

  it('re-reads when the webhook list changes between read and patch', async () => {
    const bundle = 'PEM\n';
    let changed = false;
    api.before = (method) => {
      if (method === 'PATCH' && !changed) {
        changed = true;
        api.config!.webhooks!.reverse(); // the `test` of the names at their indexes now fails
      }
    };
    expect(await ensureCaBundle(clients, opts, bundle, quiet)).toBe(2);
    expect(api.calls.filter((c) => c.startsWith('PATCH'))).toHaveLength(2);
    expect(api.config!.webhooks!.every((w) => w.clientConfig.caBundle === Buffer.from(bundle).toString('base64'))).toBe(true);
  });

  it('repairs only the entries whose caBundle drifted', async () => {
    const bundle = 'PEM\n';
    api.config = config(Buffer.from(bundle).toString('base64'));
    delete api.config.webhooks![1]!.clientConfig.caBundle;
    expect(await ensureCaBundle(clients, opts, bundle, quiet)).toBe(1);
  });

  it('says clearly when the webhook configuration does not exist', async () => {
    delete api.config;
    await expect(ensureCaBundle(clients, opts, 'PEM\n', quiet)).rejects.toMatchObject({
      code: 'CERTS_KUBERNETES',
      message: expect.stringMatching(/MutatingWebhookConfiguration hook does not exist/),
    });
  });

  it('reports a refused write with the status and the RBAC hint', async () => {
    server.removeAllListeners('request');
    server.on('request', (_req, res) => {
      res.writeHead(403, { 'content-type': 'application/json' });
      res.end(JSON.stringify(status(403, 'Forbidden', 'secrets "hook-tls" is forbidden: User "system:serviceaccount:platform:hook" cannot get resource "secrets"')));
    });
    await expect(ensureSecret(clients, opts, quiet)).rejects.toMatchObject({
      code: 'CERTS_KUBERNETES',
      message: expect.stringMatching(/reading Secret platform\/hook-tls: HTTP 403: .*cannot get resource "secrets" \(check the RBAC/),
    });
  });

  it('a Secret deleted by hand with the chart\'s RBAC (no create): says how to bring it back', async () => {
    server.removeAllListeners('request');
    server.on('request', (req, res) => {
      const notFound = req.method === 'GET';
      res.writeHead(notFound ? 404 : 403, { 'content-type': 'application/json' });
      res.end(JSON.stringify(notFound ? status(404, 'NotFound', 'not found') : status(403, 'Forbidden', 'secrets is forbidden: cannot create resource "secrets"')));
    });
    await expect(ensureSecret(clients, opts, quiet)).rejects.toMatchObject({
      code: 'CERTS_KUBERNETES',
      message: expect.stringMatching(/Secret platform\/hook-tls does not exist and this ServiceAccount may not create it: .*`helm upgrade` of the release/),
    });
  });

  it('a request the API server accepts and never answers is abandoned after the request timeout, naming the server', async () => {
    server.removeAllListeners('request');
    server.on('request', () => undefined); // holds every request open
    const started = Date.now();
    await expect(ensureSecret({ ...clients, requestTimeoutMs: 300 }, opts, quiet)).rejects.toMatchObject({
      code: 'CERTS_KUBERNETES',
      message: expect.stringMatching(/^reading Secret platform\/hook-tls: the Kubernetes API at http:\/\/127\.0\.0\.1:\d+ did not answer within 0\.3 s$/),
    });
    expect(Date.now() - started).toBeLessThan(3_000);
    server.closeAllConnections();
  });

  it('every request of a pass is bounded: a hanging caBundle patch too', async () => {
    const handler = server.listeners('request')[0] as (req: IncomingMessage, res: unknown) => void;
    server.removeAllListeners('request');
    server.on('request', (req, res) => (req.method === 'PATCH' ? undefined : handler(req, res))); // the PATCH goes unanswered
    await expect(reconcile({ ...clients, requestTimeoutMs: 300 }, opts, quiet)).rejects.toMatchObject({
      message: expect.stringMatching(/^patching caBundle of MutatingWebhookConfiguration hook: the Kubernetes API at .* did not answer within 0\.3 s$/),
    });
    expect(api.secret?.data?.['tls.crt']).toBeDefined();
    server.closeAllConnections();
  });

  describe('the commands', () => {
    let dir: string;
    const flags = () => ['--namespace=platform', '--secret=hook-tls', '--service=hook', '--webhook-configuration=hook', `--out=${dir}`];
    const deps = (extra: object = {}) => ({ clients: () => clients, logger: pino({ level: 'silent' }), stdout: () => undefined, stderr: () => undefined, ...extra });
    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), 'certs-cmd-'));
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it('bootstrap waits for a webhook configuration that appears late, then writes the pair', async () => {
      delete api.config;
      setTimeout(() => (api.config = config()), 1_000);
      expect(await run(['bootstrap', ...flags(), '--timeout-seconds=30'], deps())).toBe(0);
      expect(readFileSync(join(dir, 'tls.crt'), 'utf8')).toBe(Buffer.from(api.secret!.data!['tls.crt']!, 'base64').toString());
      expect(api.config!.webhooks![0]!.clientConfig.caBundle).toBe(api.secret!.data!['ca.crt']);
    });

    it('after Secret and caBundle were both wiped, a pass keeps the CA it was serving under in the bundle', async () => {
      expect(await run(['bootstrap', ...flags(), '--timeout-seconds=30'], deps({ settleMs: 0 }))).toBe(0);
      const servedCa = readFileSync(join(dir, 'ca.crt'), 'utf8');
      api.secret = { apiVersion: 'v1', kind: 'Secret', type: 'Opaque', metadata: { name: 'hook-tls', namespace: 'platform', resourceVersion: '50' } };
      for (const w of api.config!.webhooks!) delete w.clientConfig.caBundle;
      expect(await run(['bootstrap', ...flags(), '--timeout-seconds=30'], deps({ settleMs: 0 }))).toBe(0);
      const newCa = Buffer.from(api.secret.data!['ca.crt']!, 'base64').toString();
      expect(newCa).not.toBe(servedCa);
      expect(Buffer.from(api.config!.webhooks![0]!.clientConfig.caBundle!, 'base64').toString()).toBe(`${newCa}${servedCa}`);
    });

    it('bootstrap gives up at its timeout with the reason', async () => {
      delete api.config;
      const err: string[] = [];
      expect(await run(['bootstrap', ...flags(), '--timeout-seconds=1'], deps({ stderr: (s: string) => void err.push(s) }))).toBe(1);
      expect(err.join('')).toMatch(/MutatingWebhookConfiguration hook does not exist/);
    });

    it('bootstrap against an API server that never answers gives up at --timeout-seconds, naming the request in flight', async () => {
      server.removeAllListeners('request');
      server.on('request', () => undefined);
      const err: string[] = [];
      const started = Date.now();
      expect(await run(['bootstrap', ...flags(), '--timeout-seconds=1.5'], deps({ stderr: (s: string) => void err.push(s) }))).toBe(1);
      // The deadline holds although the request timeout (10 s) is longer.
      expect(Date.now() - started).toBeLessThan(4_000);
      expect(err.join('')).toMatch(/^certs bootstrap: reading Secret platform\/hook-tls: the Kubernetes API at http:\/\/127\.0\.0\.1:\d+ had not answered when --timeout-seconds \(1\.5\) ran out\n$/);
      server.closeAllConnections();
    });

    it('bootstrap retries a request that timed out and succeeds once the API server answers', async () => {
      const handler = server.listeners('request')[0] as (req: IncomingMessage, res: unknown) => void;
      let unanswered = 1;
      server.removeAllListeners('request');
      server.on('request', (req, res) => (unanswered-- > 0 ? undefined : handler(req, res)));
      const fast = () => ({ ...clients, requestTimeoutMs: 300 });
      expect(await run(['bootstrap', ...flags(), '--timeout-seconds=30'], deps({ clients: fast }))).toBe(0);
      expect(readFileSync(join(dir, 'tls.crt'), 'utf8')).toBe(Buffer.from(api.secret!.data!['tls.crt']!, 'base64').toString());
      server.closeAllConnections();
    });

    it('manage with an interval past what a timer holds (2^31-1 ms) waits, rather than passing back to back', async () => {
      let stop!: () => void;
      const stopSignal = new Promise<void>((r) => (stop = r));
      const running = run(['manage', ...flags(), '--interval-seconds=3000000'], deps({ stopSignal }));
      await new Promise((r) => setTimeout(r, 1_500));
      stop();
      expect(await running).toBe(0);
      expect(api.calls.filter((c) => c === `GET ${SECRET_PATH}/hook-tls`).length).toBeLessThanOrEqual(2); // one pass: a read, the create, a read back
    });

    it('manage re-patches a wiped caBundle within an interval and stops on the signal', async () => {
      let stop!: () => void;
      const stopSignal = new Promise<void>((r) => (stop = r));
      const running = run(['manage', ...flags(), '--interval-seconds=0.2'], deps({ stopSignal }));
      const until = async (cond: () => boolean) => {
        for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 50));
        expect(cond()).toBe(true);
      };
      await until(() => api.config!.webhooks!.every((w) => w.clientConfig.caBundle !== undefined));
      for (const w of api.config!.webhooks!) delete w.clientConfig.caBundle;
      await until(() => api.config!.webhooks!.every((w) => w.clientConfig.caBundle === api.secret!.data!['ca.crt']));
      stop();
      expect(await running).toBe(0);
    });
  });
});
