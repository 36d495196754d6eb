import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateCertificates } from '../certs/generate.js';
import { networkFromEnv, readCaBundle } from './network.js';

const dir = mkdtempSync(join(tmpdir(), 'network-spec-'));
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

describe('networkFromEnv', () => {
  it('leaves the SDK its own agents when no proxy is set', () => {
    expect(networkFromEnv({}, '24.21.0')).toEqual({ agents: {}, proxies: [] });
  });

  it("gives every AWS client agents that use Node's proxy support with the environment", () => {
    const env = { HTTPS_PROXY: 'http://proxy.internal:3128', NO_PROXY: '.vpce.amazonaws.com' };
    const n = networkFromEnv(env, '24.5.0');
    expect(n).toEqual({
      agents: { httpAgent: { keepAlive: true, maxSockets: 50, proxyEnv: env }, httpsAgent: { keepAlive: true, maxSockets: 50, proxyEnv: env } },
      proxies: ['http://proxy.internal:3128'],
    });
  });

  it('refuses a proxy on a Node.js without proxy support rather than bypass it', () => {
    expect(networkFromEnv({ https_proxy: 'http://proxy:3128' }, '24.4.1')).toEqual({
      errors: ['a proxy is set but Node.js 24.4.1 cannot use one (24.5 or later is needed): the calls would bypass it'],
    });
    expect(networkFromEnv({ HTTPS_PROXY: 'http://proxy:3128' }, '25.0.0')).toHaveProperty('agents');
  });

  it('names every unusable setting at once', () => {
    expect(networkFromEnv({ HTTPS_PROXY: 'proxy:3128', HTTP_PROXY: 'ftp://p', NODE_EXTRA_CA_CERTS: join(dir, 'missing.pem') }, '24.21.0')).toEqual({
      errors: [
        'HTTPS_PROXY must be an http:// or https:// proxy URL',
        'HTTP_PROXY must be an http:// or https:// proxy URL',
        `NODE_EXTRA_CA_CERTS ${join(dir, 'missing.pem')} cannot be read (ENOENT)`,
      ],
    });
  });
});

describe('readCaBundle', () => {
  const { caCert, cert } = generateCertificates({ dnsNames: ['localhost'] });

  it('counts the certificates of a bundle', () => {
    expect(readCaBundle(file('two.pem', `${caCert}\n${cert}`))).toEqual({ count: 2 });
  });

  it('refuses a file without a certificate, or with a broken one', () => {
    expect(readCaBundle(file('empty.pem', ''))).toEqual({ error: expect.stringContaining('holds no PEM certificate') });
    const broken = caCert.replace(/\n[A-Za-z0-9+/]{10}/, '\n!!!!!!!!!!');
    expect(readCaBundle(file('broken.pem', `${caCert}\n${broken}`))).toEqual({ error: expect.stringContaining('certificate 2 is not a valid PEM certificate') });
  });
});
