import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { run } from './cli.js';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'certs-files-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('certs generate', () => {
  const capture = () => {
    const out: string[] = [];
    const err: string[] = [];
    return { out, err, deps: { stdout: (s: string) => void out.push(s), stderr: (s: string) => void err.push(s) } };
  };

  it('writes ca.crt, tls.crt and tls.key (0600) for the Service names', async () => {
    const dir = join(tempDir(), 'new');
    const c = capture();
    expect(await run(['generate', '--out', dir, '--service', 'hook', '--namespace', 'ns', '--dns', 'a.example,b.example', '--ip', '10.0.0.1', '--days', '30'], c.deps)).toBe(0);
    expect(statSync(join(dir, 'tls.key')).mode & 0o777).toBe(0o600);
    const leaf = new X509Certificate(readFileSync(join(dir, 'tls.crt')));
    const ca = new X509Certificate(readFileSync(join(dir, 'ca.crt')));
    expect(leaf.verify(ca.publicKey)).toBe(true);
    expect(leaf.subjectAltName).toBe(
      'DNS:hook, DNS:hook.ns, DNS:hook.ns.svc, DNS:hook.ns.svc.cluster.local, DNS:a.example, DNS:b.example, IP Address:10.0.0.1',
    );
    expect(new Date(leaf.validTo).getTime() - Date.now()).toBeLessThan(31 * 24 * 3600 * 1000);
    expect(c.out.join('')).toContain(Buffer.from(readFileSync(join(dir, 'ca.crt'))).toString('base64'));
  });

  it('defaults to localhost, 127.0.0.1 and ::1', async () => {
    const dir = tempDir();
    expect(await run(['generate', '--out', dir], capture().deps)).toBe(0);
    expect(new X509Certificate(readFileSync(join(dir, 'tls.crt'))).subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
  });

  it.each([
    [['generate'], /required option '--out <dir>' not specified/],
    [['generate', '--out', '/tmp/x', '--days', 'soon'], /argument 'soon' is invalid. expected a positive number/],
    [['generate', '--out', '/tmp/x', '--service', 'hook'], /serviceName and namespace must be given together/],
    [['generate', '--out', '/tmp/x', '--ip', '1.2.3'], /IP address "1.2.3"/],
    [['bootstrap', '--secret', 's'], /--webhook-configuration \(or CERTS_WEBHOOK_CONFIGURATION\) is required; --service/],
    [['manage', '--namespace', 'ns', '--secret', 's', '--webhook-configuration', 'w', '--service', 'svc', '--renew-before-days', '400'], /--renew-before-days \(400\) must be less than --validity-days \(365\)/],
    [['bootstrap', '--namespace', 'ns', '--secret', 's', '--webhook-configuration', 'w', '--service', 'svc', '--dns', 'Bad_Name'], /DNS name "Bad_Name"/],
    // Refused at start, not a year later when the first renewal would need them.
    [['bootstrap', '--namespace=ns', '--secret=s', '--webhook-configuration=w', '--service=svc', '--timeout-seconds=1', '--key-bits=1024'], /keyBits must be a multiple of 8 from 2048 to 8192, got 1024/],
    [['bootstrap', '--namespace=ns', '--secret=s', '--webhook-configuration=w', '--service=svc', '--timeout-seconds=1', '--ca-validity-days=40000'], /caValidityDays must be a positive number of days up to 36500, got 40000/],
    [['nonsense'], /unknown command 'nonsense'/],
  ])('%j exits 2 with a specific message', async (argv, message) => {
    const c = capture();
    expect(await run(argv, { ...c.deps, namespaceFile: '/nonexistent' })).toBe(2);
    expect(c.err.join('')).toMatch(message);
  });

  it('bootstrap names the Kubernetes configuration it cannot load, exit 1', async () => {
    const c = capture();
    const saved = process.env.KUBECONFIG;
    process.env.KUBECONFIG = '/nonexistent/kubeconfig';
    try {
      expect(await run(['bootstrap', '--namespace=ns', '--secret=s', '--service=svc', '--webhook-configuration=w'], c.deps)).toBe(1);
    } finally {
      if (saved === undefined) delete process.env.KUBECONFIG;
      else process.env.KUBECONFIG = saved;
    }
    expect(c.err.join('')).toMatch(/cannot load the Kubernetes client configuration from KUBECONFIG=\/nonexistent\/kubeconfig: ENOENT/);
  });
});
