// The built CLI (`node <bundle>/cli.mjs certs bootstrap`) as a child process, the way the webhook
// pod's init container runs it, against an API server that accepts the connection and never
// answers: the process must end at --timeout-seconds with the reason, not when TCP gives up.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createTcpServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleDir, ensureBundles } from '../test/helpers/bundles.js';
import { generateCertificates } from './generate.js';

const bundle = bundleDir();
const cli = join(bundle, 'cli.mjs');
const dir = mkdtempSync(join(tmpdir(), 'certs-process-'));
const tls = generateCertificates({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
const servers: Server[] = [];
const sockets = new Set<Socket>();

beforeAll(() => {
  ensureBundles(bundle);
}, 120_000);

afterAll(() => {
  for (const s of sockets) s.destroy();
  for (const s of servers) s.close();
  rmSync(dir, { recursive: true, force: true });
});

async function listen(server: Server): Promise<number> {
  servers.push(server);
  server.on('connection', (s: Socket) => sockets.add(s));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

const TOKEN_USER = '- name: u\n  user:\n    token: t';

function kubeconfig(name: string, port: number, user = TOKEN_USER): string {
  const file = join(dir, name);
  const ca = Buffer.from(tls.caCert).toString('base64');
  writeFileSync(
    file,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      `- name: c\n  cluster:\n    server: https://127.0.0.1:${port}\n    certificate-authority-data: ${ca}`,
      'users:',
      user,
      'contexts:',
      '- name: x\n  context:\n    cluster: c\n    user: u',
      'current-context: x',
      '',
    ].join('\n'),
  );
  return file;
}

/** Runs `certs bootstrap` and waits at most `limitMs` for it to end (then kills it). */
async function bootstrap(kubeconfigFile: string, timeoutSeconds: number, limitMs: number) {
  const started = Date.now();
  const child = spawn(
    process.execPath,
    [cli, 'certs', 'bootstrap', '--namespace=platform', '--secret=hook-tls', '--service=hook', '--webhook-configuration=hook', `--out=${join(dir, 'out')}`, `--timeout-seconds=${timeoutSeconds}`],
    { env: { ...process.env, KUBECONFIG: kubeconfigFile, LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  let stdout = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const killer = setTimeout(() => child.kill('SIGKILL'), limitMs);
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  clearTimeout(killer);
  return { code, signal, elapsedMs: Date.now() - started, stderr, stdout };
}

describe('certs bootstrap (the built CLI) against an API server that never answers', () => {
  it.each([
    ['accepts TCP connections and never says a word (the TLS handshake hangs)', () => createTcpServer(() => undefined)],
    ['completes TLS and never answers the request', () => createHttpsServer({ cert: tls.cert, key: tls.key }, () => undefined)],
  ])('one that %s: exits 1 at --timeout-seconds, naming the request in flight', async (_what, make) => {
    const port = await listen(make());
    const result = await bootstrap(kubeconfig(`kubeconfig-${port}`, port), 2, 20_000);
    expect(result.signal, `killed after 20 s; stderr: ${result.stderr}`).toBeNull();
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      `certs bootstrap: reading Secret platform/hook-tls: the Kubernetes API at https://127.0.0.1:${port} had not answered when --timeout-seconds (2) ran out\n`,
    );
    // The deadline is the bound (start-up of node and the bundle aside), not the 10 s request timeout.
    expect(result.elapsedMs).toBeLessThan(8_000);
    // The log says the same, as JSON.
    expect(result.stdout).toMatch(/"level":50.*"code":"CERTS_KUBERNETES".*had not answered when --timeout-seconds \(2\) ran out/);
  }, 30_000);

  it('a credential plugin (kubeconfig exec) that never returns: the process still exits at --timeout-seconds, leaving the plugin behind', async () => {
    const port = await listen(createHttpsServer({ cert: tls.cert, key: tls.key }, () => undefined));
    const hangingPlugin = [
      '- name: u',
      '  user:',
      '    exec:',
      '      apiVersion: client.authentication.k8s.io/v1beta1',
      `      command: ${JSON.stringify(process.execPath)}`,
      '      args: ["-e", "setTimeout(() => {}, 15000)"]',
      '      interactiveMode: Never',
    ].join('\n');
    const result = await bootstrap(kubeconfig('kubeconfig-exec', port, hangingPlugin), 2, 20_000);
    expect(result.signal, `killed after 20 s; stderr: ${result.stderr}`).toBeNull();
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^certs bootstrap: reading Secret platform\/hook-tls: .* had not answered when --timeout-seconds \(2\) ran out\n$/);
    expect(result.elapsedMs).toBeLessThan(8_000);
  }, 30_000);
});
