import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { connect, createServer } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { CertsError } from './errors.js';
import { generateCertificates, serviceDnsNames } from './generate.js';

const DAY = 24 * 60 * 60 * 1000;

function sanList(cert: X509Certificate): string[] {
  return (cert.subjectAltName ?? '').split(', ').filter(Boolean);
}

describe('generateCertificates', () => {
  const now = new Date('2026-03-01T12:00:00Z');
  const bundle = generateCertificates({
    serviceName: 'aws-secret-injector',
    namespace: 'platform',
    dnsNames: ['webhook.example.com'],
    ipAddresses: ['127.0.0.1', '::1'],
    now,
  });
  const ca = new X509Certificate(bundle.caCert);
  const leaf = new X509Certificate(bundle.cert);

  it('puts the four Service names and the extra names into the SANs', () => {
    expect(sanList(leaf)).toEqual([
      'DNS:aws-secret-injector',
      'DNS:aws-secret-injector.platform',
      'DNS:aws-secret-injector.platform.svc',
      'DNS:aws-secret-injector.platform.svc.cluster.local',
      'DNS:webhook.example.com',
      'IP Address:127.0.0.1',
      'IP Address:0:0:0:0:0:0:0:1',
    ]);
    expect(leaf.checkHost('aws-secret-injector.platform.svc')).toBe('aws-secret-injector.platform.svc');
    expect(leaf.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(leaf.checkHost('other.platform.svc')).toBeUndefined();
  });

  it('chains the serving certificate to the CA', () => {
    expect(leaf.checkIssued(ca)).toBe(true);
    expect(leaf.verify(ca.publicKey)).toBe(true);
    expect(ca.verify(ca.publicKey)).toBe(true);
    expect(leaf.issuer).toBe(ca.subject);
  });

  it('marks the CA as a CA and the serving certificate as a TLS server certificate', () => {
    expect(ca.ca).toBe(true);
    expect(leaf.ca).toBe(false);
    expect(leaf.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']); // extended key usage: serverAuth only
    const text = leaf.toLegacyObject() as unknown as { ext_key_usage?: string[] };
    expect(text.ext_key_usage).toEqual(['1.3.6.1.5.5.7.3.1']);
  });

  it('gives the CA ten years and the serving certificate one, both backdated a little', () => {
    const leafFrom = new Date(leaf.validFrom).getTime();
    const leafTo = new Date(leaf.validTo).getTime();
    const caTo = new Date(ca.validTo).getTime();
    expect(leafFrom).toBeLessThan(now.getTime());
    expect(now.getTime() - leafFrom).toBeLessThanOrEqual(10 * 60 * 1000);
    expect(leafTo - now.getTime()).toBe(365 * DAY);
    expect(caTo - now.getTime()).toBe(3650 * DAY);
    expect(bundle.notAfter.getTime()).toBe(leafTo);
    expect(bundle.notBefore.getTime()).toBe(leafFrom);
    expect(bundle.caNotAfter.getTime()).toBe(caTo);
  });

  it('uses RSA keys of at least 2048 bits that belong to their certificates', () => {
    const key = createPrivateKey(bundle.key);
    expect(key.asymmetricKeyType).toBe('rsa');
    expect(key.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(leaf.checkPrivateKey(key)).toBe(true);
    expect(ca.checkPrivateKey(createPrivateKey(bundle.caKey))).toBe(true);
    expect(createPublicKey(bundle.key).export({ format: 'der', type: 'spki' })).toEqual(
      leaf.publicKey.export({ format: 'der', type: 'spki' }),
    );
  });

  it('makes a different CA and serial every time', () => {
    const other = generateCertificates({ serviceName: 'aws-secret-injector', namespace: 'platform', now });
    const otherCa = new X509Certificate(other.caCert);
    expect(otherCa.subject).not.toBe(ca.subject);
    expect(otherCa.serialNumber).not.toBe(ca.serialNumber);
    expect(new X509Certificate(other.cert).checkIssued(ca)).toBe(false);
  });

  it('issues under a given CA, keeping that CA and capping the lifetime at its end', () => {
    const shortCa = generateCertificates({ dnsNames: ['ca.test'], caValidityDays: 30, now });
    const issued = generateCertificates({
      dnsNames: ['localhost'],
      validityDays: 365,
      now,
      ca: { cert: shortCa.caCert, key: shortCa.caKey },
    });
    expect(issued.caCert).toBe(shortCa.caCert);
    expect(issued.caKey).toBe(shortCa.caKey);
    const issuedLeaf = new X509Certificate(issued.cert);
    expect(issuedLeaf.verify(new X509Certificate(shortCa.caCert).publicKey)).toBe(true);
    expect(new Date(issuedLeaf.validTo).getTime()).toBe(new Date(new X509Certificate(shortCa.caCert).validTo).getTime());
  });

  it('honours keyBits and validity days', () => {
    const b = generateCertificates({ dnsNames: ['localhost'], keyBits: 3072, validityDays: 10, caValidityDays: 20, now });
    expect(createPrivateKey(b.key).asymmetricKeyDetails?.modulusLength).toBe(3072);
    expect(new Date(new X509Certificate(b.cert).validTo).getTime() - now.getTime()).toBe(10 * DAY);
    expect(new Date(new X509Certificate(b.caCert).validTo).getTime() - now.getTime()).toBe(20 * DAY);
  });

  it('encodes dates after 2049 (GeneralizedTime) correctly', () => {
    const b = generateCertificates({ dnsNames: ['localhost'], now: new Date('2045-01-01T00:00:00Z') });
    expect(new Date(new X509Certificate(b.caCert).validTo).toISOString()).toBe('2054-12-30T00:00:00.000Z');
  });

  it.each([
    [{}, /no names/],
    [{ serviceName: 'svc' }, /serviceName and namespace must be given together/],
    [{ serviceName: 'Bad_Name', namespace: 'ns' }, /service name "Bad_Name"/],
    [{ dnsNames: ['ok.example', 'under_score.example'] }, /DNS name "under_score.example"/],
    [{ ipAddresses: ['300.1.1.1'] }, /IP address "300.1.1.1"/],
    [{ dnsNames: ['localhost'], keyBits: 1024 }, /keyBits must be/],
    [{ dnsNames: ['localhost'], validityDays: 0 }, /validityDays must be/],
    [{ dnsNames: ['localhost'], caValidityDays: Number.NaN }, /caValidityDays must be/],
  ])('rejects %j with a specific error', (req, message) => {
    expect(() => generateCertificates(req)).toThrow(message);
    try {
      generateCertificates(req);
    } catch (err) {
      expect(err).toBeInstanceOf(CertsError);
      expect((err as CertsError).code).toBe('CERTS_INVALID_REQUEST');
    }
  });

  it('rejects a CA that is not a CA, or a key that does not match', () => {
    const a = generateCertificates({ dnsNames: ['localhost'] });
    const b = generateCertificates({ dnsNames: ['localhost'] });
    expect(() => generateCertificates({ dnsNames: ['x'], ca: { cert: a.cert, key: a.key } })).toThrow(/not a CA/);
    expect(() => generateCertificates({ dnsNames: ['x'], ca: { cert: a.caCert, key: b.caKey } })).toThrow(/does not belong/);
    expect(() => generateCertificates({ dnsNames: ['x'], ca: { cert: 'junk', key: a.caKey } })).toThrow(/not a PEM X.509/);
    expect(() => generateCertificates({ dnsNames: ['x'], ca: { cert: a.caCert, key: 'junk' } })).toThrow(/not a PEM private key/);
  });

  it('lists the service names in the order Kubernetes tries them', () => {
    expect(serviceDnsNames('s', 'n')).toEqual(['s', 's.n', 's.n.svc', 's.n.svc.cluster.local']);
  });
});

describe('a TLS handshake with the generated certificate', () => {
  const served = generateCertificates({ serviceName: 'hook', namespace: 'ns', ipAddresses: ['127.0.0.1'] });
  const stranger = generateCertificates({ serviceName: 'hook', namespace: 'ns', ipAddresses: ['127.0.0.1'] });

  async function handshake(ca: string, servername: string): Promise<'ok' | string> {
    const server = createServer({ cert: served.cert, key: served.key }, (socket) => socket.end('hi'));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    try {
      return await new Promise((resolve) => {
        const socket = connect({ host: '127.0.0.1', port, ca, servername }, () => {
          socket.end();
          resolve('ok');
        });
        socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      });
    } finally {
      server.close();
    }
  }

  it('succeeds for a client that trusts only our CA, by Service name', async () => {
    expect(await handshake(served.caCert, 'hook.ns.svc')).toBe('ok');
  });

  it('fails for a client that trusts another CA', async () => {
    expect(await handshake(stranger.caCert, 'hook.ns.svc')).toMatch(/SELF_SIGNED|UNABLE_TO_VERIFY|CERT/);
  });

  it('fails for a name that is not in the SANs', async () => {
    expect(await handshake(served.caCert, 'other.ns.svc')).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
  });
});
