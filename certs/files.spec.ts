import { lstatSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readServingDir, writeGeneratedFiles, writeServingDir } from './files.js';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'certs-files-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('writeServingDir', () => {
  const a = { cert: 'CERT-A\n', key: 'KEY-A\n', caBundle: 'CA-A\n' };
  const b = { cert: 'CERT-B\n', key: 'KEY-B\n', caBundle: 'CA-A\nCA-OLD\n' };

  it('lays the files out like a kubelet Secret volume, key 0600', async () => {
    const dir = tempDir();
    expect(await writeServingDir(dir, a)).toBe(true);
    expect(readlinkSync(join(dir, 'tls.crt'))).toBe('..data/tls.crt');
    expect(readlinkSync(join(dir, 'tls.key'))).toBe('..data/tls.key');
    expect(lstatSync(join(dir, '..data')).isSymbolicLink()).toBe(true);
    expect(readFileSync(join(dir, 'tls.crt'), 'utf8')).toBe(a.cert);
    expect(readFileSync(join(dir, 'ca.crt'), 'utf8')).toBe(a.caBundle);
    expect(statSync(join(dir, 'tls.key')).mode & 0o777).toBe(0o600);
    expect(await readServingDir(dir)).toEqual({ cert: a.cert, key: a.key, ca: a.caBundle });
  });

  it('does nothing when the content is unchanged, and swaps the whole pair when it changes', async () => {
    const dir = tempDir();
    await writeServingDir(dir, a);
    const firstVersion = readlinkSync(join(dir, '..data'));
    expect(await writeServingDir(dir, a)).toBe(false);
    expect(readlinkSync(join(dir, '..data'))).toBe(firstVersion);
    expect(await writeServingDir(dir, b)).toBe(true);
    expect(readlinkSync(join(dir, '..data'))).not.toBe(firstVersion);
    expect(readFileSync(join(dir, 'tls.key'), 'utf8')).toBe(b.key);
    // the old version directory is gone; only the links and the current version remain
    expect(readdirSync(dir).sort()).toEqual(['..data', readlinkSync(join(dir, '..data')), 'ca.crt', 'tls.crt', 'tls.key'].sort());
  });

  it('replaces plain files left by an earlier tool', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'tls.crt'), 'OLD');
    await writeServingDir(dir, a);
    expect(readFileSync(join(dir, 'tls.crt'), 'utf8')).toBe(a.cert);
  });

  it('reports an unwritable directory as CERTS_IO', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'file'), 'x');
    await expect(writeServingDir(join(dir, 'file', 'sub'), a)).rejects.toMatchObject({ code: 'CERTS_IO' });
  });
});

describe('writeGeneratedFiles', () => {
  it('refuses to replace files without force, and replaces them with it', async () => {
    const dir = tempDir();
    await writeGeneratedFiles(dir, { caCert: 'CA', cert: 'C', key: 'K' }, false);
    await expect(writeGeneratedFiles(dir, { caCert: 'CA2', cert: 'C2', key: 'K2' }, false)).rejects.toThrow(/already holds ca.crt, tls.crt, tls.key; pass --force/);
    expect(readFileSync(join(dir, 'tls.crt'), 'utf8')).toBe('C');
    await writeGeneratedFiles(dir, { caCert: 'CA2', cert: 'C2', key: 'K2' }, true);
    expect(readFileSync(join(dir, 'tls.crt'), 'utf8')).toBe('C2');
    expect(readdirSync(dir).sort()).toEqual(['ca.crt', 'tls.crt', 'tls.key']);
  });
});

