import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { generateCertificates } from '../certs/generate.js';
import { checkPair, developmentPair, readPair, TlsReloader, type TlsPair } from './tls.js';

const a = generateCertificates({ dnsNames: ['localhost'] });
const b = generateCertificates({ dnsNames: ['localhost'] });
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
async function files(cert: string, key: string): Promise<{ dir: string; certFile: string; keyFile: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'tls-spec-'));
  dirs.push(dir);
  await writeFile(join(dir, 'tls.crt'), cert);
  await writeFile(join(dir, 'tls.key'), key);
  return { dir, certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key') };
}

describe('checkPair', () => {
  it('accepts a certificate and its key, and describes the certificate', () => {
    const p = checkPair(a.cert, a.key);
    expect(p.fingerprint).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    expect(p.notAfter.getTime()).toBeGreaterThan(Date.now());
    expect(p.subjectAltName).toContain('DNS:localhost');
  });

  it.each([
    ['a key of another certificate', a.cert, b.key, /does not belong/],
    ['garbage as the certificate', 'not a pem', a.key, /not a PEM X.509 certificate/],
    ['garbage as the key', a.cert, 'not a pem', /not a PEM private key/],
    ['the certificate as the key', a.cert, a.cert, /not a PEM private key/],
    ['empty files', '', '', /not a PEM X.509 certificate/],
  ])('refuses %s with WEBHOOK_TLS_INVALID', (_what, cert, key, message) => {
    expect(() => checkPair(cert, key)).toThrow(message);
    try {
      checkPair(cert, key);
    } catch (e) {
      expect((e as { code: string }).code).toBe('WEBHOOK_TLS_INVALID');
    }
  });
});

describe('readPair', () => {
  it('names every file it cannot read', async () => {
    await expect(readPair('/nonexistent/tls.crt', '/nonexistent/tls.key')).rejects.toMatchObject({
      code: 'WEBHOOK_TLS_UNREADABLE',
      message: 'cannot read /nonexistent/tls.crt (ENOENT); cannot read /nonexistent/tls.key (ENOENT)',
    });
  });
});

describe('developmentPair', () => {
  it('is valid for localhost, 127.0.0.1 and ::1', () => {
    const p = developmentPair();
    expect(p.subjectAltName).toContain('DNS:localhost');
    expect(p.subjectAltName).toContain('IP Address:127.0.0.1');
    expect(p.caCert).toMatch(/BEGIN CERTIFICATE/);
  });
});

describe('TlsReloader.check', () => {
  it('does nothing while the files are unchanged, reloads a changed valid pair once, rejects a bad pair once', async () => {
    const f = await files(a.cert, a.key);
    const applied: TlsPair[] = [];
    const results: string[] = [];
    const r = new TlsReloader({
      ...f,
      current: checkPair(a.cert, a.key),
      apply: (p) => applied.push(p),
      log: pino({ level: 'silent' }),
      onResult: (res) => results.push(res),
    });
    await r.check();
    expect(applied).toHaveLength(0);
    await writeFile(f.keyFile, b.key);
    await r.check();
    await r.check();
    expect(results).toEqual(['invalid']);
    await writeFile(f.certFile, b.cert);
    await r.check();
    await r.check();
    expect(results).toEqual(['invalid', 'reloaded']);
    expect(applied.map((p) => p.fingerprint)).toEqual([checkPair(b.cert, b.key).fingerprint]);
    r.close();
  });

  it('keeps the current pair when a file is missing for a moment', async () => {
    const f = await files(a.cert, a.key);
    const results: string[] = [];
    const r = new TlsReloader({ ...f, current: checkPair(a.cert, a.key), apply: () => undefined, log: pino({ level: 'silent' }), onResult: (x) => results.push(x) });
    await rm(f.keyFile);
    await r.check();
    expect(results).toEqual([]);
  });

  it('picks up changes by polling when no file-system event arrives', async () => {
    const f = await files(a.cert, a.key);
    let applied = 0;
    const r = new TlsReloader({ ...f, current: checkPair(a.cert, a.key), apply: () => applied++, log: pino({ level: 'silent' }), pollMs: 50, debounceMs: 60_000 });
    r.start();
    await writeFile(f.certFile, b.cert);
    await writeFile(f.keyFile, b.key);
    const end = Date.now() + 5000;
    while (applied === 0 && Date.now() < end) await new Promise((res) => setTimeout(res, 20));
    r.close();
    expect(applied).toBe(1);
  });
});
