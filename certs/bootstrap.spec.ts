// The bootstrap's decisions, without an API server (the API round trips are exercised against a
// real kube-apiserver in test/e2e/certs-bootstrap.test.ts).

import { X509Certificate } from 'node:crypto';
import type { V1Secret } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { PREVIOUS_CA_UNTIL_ANNOTATION, caBundleOf, decide, issue, type BootstrapOptions } from './bootstrap.js';
import { CertsError } from './errors.js';
import { generateCertificates } from './generate.js';

const DAY = 24 * 60 * 60 * 1000;
const opts: BootstrapOptions = {
  namespace: 'platform',
  secretName: 'hook-tls',
  webhookConfigName: 'hook',
  serviceName: 'hook',
  ipAddresses: ['127.0.0.1'],
  validityDays: 365,
  caValidityDays: 3650,
  renewBeforeDays: 30,
  caOverlapSeconds: 600,
};
const t0 = new Date('2026-01-01T00:00:00Z');
const at = (days: number) => new Date(t0.getTime() + days * DAY);
const pem = (secret: V1Secret, key: string) => Buffer.from(secret.data![key]!, 'base64').toString('utf8');
const stored = (s: V1Secret): V1Secret => ({ ...s, metadata: { ...s.metadata, resourceVersion: '42' } });

describe('decide + issue', () => {
  const first = stored(issue(undefined, false, opts, t0));

  it('creates when there is no Secret', () => {
    expect(decide(undefined, opts, t0)).toEqual({ action: 'create' });
  });

  it('makes a kubernetes.io/tls Secret with the CA key and no previous CA', () => {
    expect(first.type).toBe('kubernetes.io/tls');
    expect(Object.keys(first.data!).sort()).toEqual(['ca.crt', 'ca.key', 'tls.crt', 'tls.key']);
    expect(first.metadata?.labels?.['app.kubernetes.io/managed-by']).toBe('aws-secret-injector');
    const leaf = new X509Certificate(pem(first, 'tls.crt'));
    expect(leaf.checkHost('hook.platform.svc')).toBe('hook.platform.svc');
    expect(leaf.checkIP('127.0.0.1')).toBe('127.0.0.1');
  });

  it('adopts a valid Secret and serves exactly its content', () => {
    const d = decide(first, opts, at(100));
    expect(d.action).toBe('adopt');
    if (d.action !== 'adopt') return;
    expect(d.material.cert).toBe(pem(first, 'tls.crt'));
    expect(d.material.key).toBe(pem(first, 'tls.key'));
    expect(d.material.caBundle).toBe(pem(first, 'ca.crt'));
    expect(d.material.resourceVersion).toBe('42');
  });

  it('renews under the same CA when the certificate nears its end', () => {
    const d = decide(first, opts, at(340));
    expect(d).toMatchObject({ action: 'renew', keepCa: true });
    expect((d as { reason: string }).reason).toMatch(/expires at/);
    const renewed = issue(first, true, opts, at(340));
    expect(pem(renewed, 'ca.crt')).toBe(pem(first, 'ca.crt'));
    expect(pem(renewed, 'tls.crt')).not.toBe(pem(first, 'tls.crt'));
    expect(renewed.data!['ca-previous.crt']).toBeUndefined();
    expect(renewed.metadata?.resourceVersion).toBe('42'); // the update is conditional on what was read
    expect(decide(stored(renewed), opts, at(341)).action).toBe('adopt');
  });

  it('adopts a certificate carrying a wildcard name asked for, and IPv6 in any spelling', () => {
    const o = { ...opts, dnsNames: ['*.hook.example.com'], ipAddresses: ['::1'] };
    const s = stored(issue(undefined, false, o, t0));
    expect(decide(s, o, at(1)).action).toBe('adopt');
    expect(decide(s, { ...o, ipAddresses: ['0:0:0:0:0:0:0:1'] }, at(1)).action).toBe('adopt');
    expect(decide(s, { ...o, dnsNames: ['x.hook.example.com'] }, at(1))).toMatchObject({ action: 'renew' });
  });

  it('renews when the names asked for are not all in the certificate', () => {
    const d = decide(first, { ...opts, dnsNames: ['hook.example.com'] }, at(1));
    expect(d).toMatchObject({ action: 'renew', keepCa: true });
    expect((d as { reason: string }).reason).toMatch(/lacks the names hook.example.com/);
  });

  it.each([
    ['tls.crt', 'junk', /tls.crt is missing or not a certificate/],
    ['tls.key', 'junk', /tls.key is missing or not a private key/],
    ['ca.crt', 'junk', /ca.crt is missing or not a certificate/],
  ])('renews when %s is unreadable', (key, value, reason) => {
    const broken = { ...first, data: { ...first.data, [key]: Buffer.from(value).toString('base64') } };
    const d = decide(broken, opts, at(1));
    expect(d.action).toBe('renew');
    expect((d as { reason: string }).reason).toMatch(reason);
  });

  it('renews when the key or the signer does not match', () => {
    const other = generateCertificates({ serviceName: 'hook', namespace: 'platform', ipAddresses: ['127.0.0.1'], now: t0 });
    const wrongKey = { ...first, data: { ...first.data, 'tls.key': Buffer.from(other.key).toString('base64') } };
    expect(decide(wrongKey, opts, at(1))).toMatchObject({ action: 'renew', reason: 'tls.key does not belong to tls.crt', keepCa: true });
    const wrongSigner = {
      ...first,
      data: { ...first.data, 'tls.crt': Buffer.from(other.cert).toString('base64'), 'tls.key': Buffer.from(other.key).toString('base64') },
    };
    expect(decide(wrongSigner, opts, at(1))).toMatchObject({ action: 'renew', reason: 'tls.crt is not signed by ca.crt' });
  });

  it('fills an empty Secret of the right type (one a chart created as a placeholder)', () => {
    const empty: V1Secret = { type: 'kubernetes.io/tls', metadata: { name: 'hook-tls', resourceVersion: '7' }, data: {} };
    expect(decide(empty, opts, t0)).toMatchObject({ action: 'renew', keepCa: false });
    const filled = issue(empty, false, opts, t0);
    expect(filled.data!['ca-previous.crt']).toBeUndefined();
    expect(filled.metadata?.resourceVersion).toBe('7');
  });

  it('fills the empty Opaque Secret a chart creates, keeping its type (types are immutable)', () => {
    const placeholder: V1Secret = {
      type: 'Opaque',
      metadata: { name: 'hook-tls', resourceVersion: '3', labels: { 'app.kubernetes.io/managed-by': 'Helm' } },
    };
    expect(decide(placeholder, opts, t0)).toMatchObject({ action: 'renew', keepCa: false });
    const filled = stored(issue(placeholder, false, opts, t0));
    expect(filled.type).toBe('Opaque');
    expect(filled.metadata?.labels).toEqual({ 'app.kubernetes.io/managed-by': 'Helm' });
    expect(decide(filled, opts, at(1)).action).toBe('adopt');
  });

  it('refuses a Secret of another type with a clear error', () => {
    const token: V1Secret = { type: 'kubernetes.io/service-account-token', metadata: { name: 'hook-tls' }, data: {} };
    expect(() => decide(token, opts, t0)).toThrow(CertsError);
    expect(() => decide(token, opts, t0)).toThrow(/has type "kubernetes.io\/service-account-token", not kubernetes.io\/tls or Opaque/);
  });

  describe('CA rotation', () => {
    // A CA with 400 days left cannot sign a 365-day certificate once under 365 days remain.
    const shortCa = stored(issue(undefined, false, { ...opts, caValidityDays: 400 }, t0));
    const rotateAt = at(380);
    const decision = decide(shortCa, opts, rotateAt);
    const rotated = stored(issue(shortCa, false, opts, rotateAt));

    it('makes a new CA when the old one cannot cover a full certificate lifetime', () => {
      // the serving certificate was capped at the CA's end (400 d), so at 380 d both near their end
      expect(decision).toMatchObject({ action: 'renew', keepCa: false });
      expect(pem(rotated, 'ca.crt')).not.toBe(pem(shortCa, 'ca.crt'));
    });

    it('keeps the previous CA in the bundle for the overlap period, after the new one', () => {
      expect(pem(rotated, 'ca-previous.crt')).toBe(pem(shortCa, 'ca.crt'));
      expect(rotated.metadata?.annotations?.[PREVIOUS_CA_UNTIL_ANNOTATION]).toBe(new Date(rotateAt.getTime() + 600_000).toISOString());
      const d = decide(rotated, opts, new Date(rotateAt.getTime() + 60_000));
      expect(d.action).toBe('adopt');
      if (d.action !== 'adopt') return;
      expect(d.material.caBundle).toBe(pem(rotated, 'ca.crt') + pem(shortCa, 'ca.crt'));
      expect(d.material.caCert).toBe(pem(rotated, 'ca.crt'));
    });

    it('drops the previous CA once the overlap has ended', () => {
      const later = new Date(rotateAt.getTime() + 601_000);
      expect(decide(rotated, opts, later)).toMatchObject({ action: 'drop-previous-ca' });
      expect(caBundleOf(rotated, later)).toBe(pem(rotated, 'ca.crt'));
    });

    it('keeps a running overlap when the serving certificate is renewed under the new CA', () => {
      const renewed = issue(rotated, true, { ...opts, dnsNames: ['extra.example'] }, new Date(rotateAt.getTime() + 1000));
      expect(renewed.data!['ca-previous.crt']).toBe(rotated.data!['ca-previous.crt']);
      expect(renewed.metadata?.annotations?.[PREVIOUS_CA_UNTIL_ANNOTATION]).toBe(rotated.metadata?.annotations?.[PREVIOUS_CA_UNTIL_ANNOTATION]);
    });

    it('does not keep an expired CA as the previous one', () => {
      const expired = issue(shortCa, false, opts, at(401));
      expect(expired.data!['ca-previous.crt']).toBeUndefined();
      expect(expired.metadata?.annotations?.[PREVIOUS_CA_UNTIL_ANNOTATION]).toBeUndefined();
    });

    it('rotates the CA when ca.key is missing (a Secret made by someone else)', () => {
      const noKey = { ...first, data: { ...first.data } };
      delete noKey.data['ca.key'];
      expect(decide(noKey, opts, at(1)).action).toBe('adopt');
      expect(decide(noKey, opts, at(340))).toMatchObject({ action: 'renew', keepCa: false });
    });
  });
});
