// Certificate authority and webhook serving certificate, in memory, as PEM.
//
// The only importer of node-forge. RSA keys come from node:crypto (native and fast; forge's
// pure-JS key generation takes seconds per 2048-bit key) and so do the signatures (forge's
// pure-JS RSA signing takes ~150 ms each); forge only builds the X.509 structures, which
// node:crypto cannot do.

import {
  X509Certificate,
  constants,
  createPrivateKey,
  generateKeyPairSync,
  privateEncrypt,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import { isIP } from 'node:net';
import forge from 'node-forge';
import { CertsError } from './errors.js';

export interface CertificateRequest {
  /** Name of the webhook Service: adds the SANs <svc>, <svc>.<ns>, <svc>.<ns>.svc, <svc>.<ns>.svc.cluster.local. */
  serviceName?: string;
  /** Namespace of the Service; required with serviceName. */
  namespace?: string;
  /** Extra DNS SANs (a leading `*.` wildcard label is allowed). */
  dnsNames?: string[];
  /** Extra IP SANs, IPv4 or IPv6. */
  ipAddresses?: string[];
  /** Lifetime of a newly made CA. */
  caValidityDays?: number;
  /** Lifetime of the serving certificate (never beyond the CA's own notAfter). */
  validityDays?: number;
  /** RSA modulus size for new keys. */
  keyBits?: number;
  /** The clock, for tests. */
  now?: Date;
  /** Issue the serving certificate under this CA instead of making a new one. */
  ca?: { cert: string; key: string };
}

export interface CertificateBundle {
  caCert: string;
  caKey: string;
  cert: string;
  key: string;
  /** Validity window of the serving certificate. */
  notBefore: Date;
  notAfter: Date;
  /** notAfter of the CA certificate. */
  caNotAfter: Date;
}

export const DEFAULT_CA_VALIDITY_DAYS = 3650;
export const DEFAULT_VALIDITY_DAYS = 365;
export const DEFAULT_KEY_BITS = 2048;
// NIST SP 800-131A: RSA below 2048 bits is disallowed. Above 8192 generation takes too long to be useful.
const MIN_KEY_BITS = 2048;
const MAX_KEY_BITS = 8192;
// notBefore lies this far in the past so nodes whose clocks run a little behind accept the certificate.
const BACKDATE_MS = 5 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;
// X.520 ub-common-name.
const MAX_COMMON_NAME = 64;

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** The SAN DNS names that make a certificate valid for a Service reached as <svc>.<ns>.svc. */
export function serviceDnsNames(serviceName: string, namespace: string): string[] {
  return [
    serviceName,
    `${serviceName}.${namespace}`,
    `${serviceName}.${namespace}.svc`,
    `${serviceName}.${namespace}.svc.cluster.local`,
  ];
}

function checkDnsName(name: string, problems: string[]): void {
  const bare = name.startsWith('*.') ? name.slice(2) : name;
  if (name.length === 0 || name.length > 253 || !bare.split('.').every((l) => DNS_LABEL.test(l))) {
    problems.push(
      `DNS name ${JSON.stringify(name)} is not a valid lower-case DNS name (RFC 1123 labels of 1-63 characters, optional leading "*.")`,
    );
  }
}

function checkDays(field: string, value: number | undefined, problems: string[]): void {
  if (value !== undefined && !(Number.isFinite(value) && value > 0 && value <= 36500)) {
    problems.push(`${field} must be a positive number of days up to 36500, got ${String(value)}`);
  }
}

/** What is wrong with a request's lifetimes and key size (empty: nothing). */
export function lifetimeAndKeyProblems(req: Pick<CertificateRequest, 'caValidityDays' | 'validityDays' | 'keyBits'>): string[] {
  const problems: string[] = [];
  checkDays('caValidityDays', req.caValidityDays, problems);
  checkDays('validityDays', req.validityDays, problems);
  const keyBits = req.keyBits ?? DEFAULT_KEY_BITS;
  if (!Number.isInteger(keyBits) || keyBits < MIN_KEY_BITS || keyBits > MAX_KEY_BITS || keyBits % 8 !== 0) {
    problems.push(`keyBits must be a multiple of 8 from ${MIN_KEY_BITS} to ${MAX_KEY_BITS}, got ${String(keyBits)}`);
  }
  return problems;
}

/** All SANs of a request, validated; throws CERTS_INVALID_REQUEST listing every problem. */
export function subjectAltNames(req: CertificateRequest): { dnsNames: string[]; ipAddresses: string[] } {
  const problems: string[] = [];
  const dns: string[] = [];
  if (req.serviceName !== undefined || req.namespace !== undefined) {
    if (!req.serviceName || !req.namespace) {
      problems.push('serviceName and namespace must be given together');
    } else {
      if (!DNS_LABEL.test(req.serviceName)) problems.push(`service name ${JSON.stringify(req.serviceName)} is not a valid DNS label`);
      if (!DNS_LABEL.test(req.namespace)) problems.push(`namespace ${JSON.stringify(req.namespace)} is not a valid DNS label`);
      dns.push(...serviceDnsNames(req.serviceName, req.namespace));
    }
  }
  for (const name of req.dnsNames ?? []) {
    checkDnsName(name, problems);
    dns.push(name);
  }
  const ips: string[] = [];
  for (const ip of req.ipAddresses ?? []) {
    if (isIP(ip) === 0) problems.push(`IP address ${JSON.stringify(ip)} is not a valid IPv4 or IPv6 address`);
    ips.push(ip);
  }
  if (dns.length === 0 && ips.length === 0 && problems.length === 0) {
    problems.push('no names: give serviceName + namespace, dnsNames or ipAddresses');
  }
  if (problems.length > 0) {
    throw new CertsError('CERTS_INVALID_REQUEST', `cannot generate certificates: ${problems.join('; ')}`);
  }
  return { dnsNames: [...new Set(dns)], ipAddresses: [...new Set(ips)] };
}

function newKeyPair(bits: number): { forgePublic: forge.pki.rsa.PublicKey; keyPem: string } {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', {
    modulusLength: bits,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return { forgePublic: forge.pki.publicKeyFromPem(publicKey) as forge.pki.rsa.PublicKey, keyPem: privateKey };
}

// RFC 5280 4.1.2.2: positive, at most 20 octets. 16 random bytes with the top bit cleared.
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  if (bytes[0] === 0) bytes[0] = 0x01; // keep a canonical 16-octet encoding
  return bytes.toString('hex');
}

// DER prefix of a PKCS#1 v1.5 DigestInfo for SHA-256 (RFC 8017 9.2, note 1).
const SHA256_DIGEST_INFO = Buffer.from('3031300d060960864801650304020105000420', 'hex');

// forge's Certificate.sign(key, md) hashes the TBSCertificate into md and calls key.sign(md);
// this signer answers that call with an RSASSA-PKCS1-v1_5 signature made by node:crypto.
function nativeSigner(key: KeyObject): forge.pki.rsa.PrivateKey {
  const sign = (md: forge.md.MessageDigest): string => {
    const digest = Buffer.from(md.digest().getBytes(), 'binary');
    const signature = privateEncrypt(
      { key, padding: constants.RSA_PKCS1_PADDING },
      Buffer.concat([SHA256_DIGEST_INFO, digest]),
    );
    return signature.toString('binary');
  };
  return { sign } as unknown as forge.pki.rsa.PrivateKey;
}

function loadCa(ca: { cert: string; key: string }): {
  cert: forge.pki.Certificate;
  key: forge.pki.rsa.PrivateKey;
  notAfter: Date;
} {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(ca.cert);
  } catch (err) {
    throw new CertsError('CERTS_INVALID_CA', `the CA certificate is not a PEM X.509 certificate: ${(err as Error).message}`, { cause: err });
  }
  if (!x509.ca) throw new CertsError('CERTS_INVALID_CA', 'the CA certificate is not a CA (basicConstraints cA is not true)');
  let keyObject;
  try {
    keyObject = createPrivateKey(ca.key);
  } catch (err) {
    throw new CertsError('CERTS_INVALID_CA', `the CA key is not a PEM private key: ${(err as Error).message}`, { cause: err });
  }
  if (keyObject.asymmetricKeyType !== 'rsa') {
    throw new CertsError('CERTS_INVALID_CA', `the CA key must be RSA, got ${String(keyObject.asymmetricKeyType)}`);
  }
  if (!x509.checkPrivateKey(keyObject)) {
    throw new CertsError('CERTS_INVALID_CA', 'the CA key does not belong to the CA certificate');
  }
  return {
    cert: forge.pki.certificateFromPem(ca.cert),
    key: nativeSigner(keyObject),
    notAfter: new Date(x509.validTo),
  };
}

// forge ends PEM lines with CRLF; everything else (kubectl, openssl, Go) writes LF.
const pem = (cert: forge.pki.Certificate): string => forge.pki.certificateToPem(cert).replace(/\r\n/g, '\n');

function commonName(name: string | undefined, fallback: string): string {
  return name !== undefined && name.length <= MAX_COMMON_NAME ? name : fallback;
}

/**
 * A serving certificate (and, unless `ca` is given, a new CA that signs it). Synchronous:
 * two 2048-bit keys take tens of milliseconds.
 */
export function generateCertificates(req: CertificateRequest): CertificateBundle {
  const problems = lifetimeAndKeyProblems(req);
  const keyBits = req.keyBits ?? DEFAULT_KEY_BITS;
  const now = req.now ?? new Date();
  if (Number.isNaN(now.getTime())) problems.push('now is not a valid date');
  if (problems.length > 0) {
    throw new CertsError('CERTS_INVALID_REQUEST', `cannot generate certificates: ${problems.join('; ')}`);
  }
  const sans = subjectAltNames(req);
  const notBefore = new Date(now.getTime() - BACKDATE_MS);
  const md = (): forge.md.MessageDigest => forge.md.sha256.create();

  let caCert: forge.pki.Certificate;
  let caKey: forge.pki.rsa.PrivateKey;
  let caKeyPem: string;
  let caCertPem: string;
  let caNotAfter: Date;
  if (req.ca) {
    const loaded = loadCa(req.ca);
    if (loaded.notAfter.getTime() <= now.getTime()) {
      throw new CertsError('CERTS_INVALID_CA', `the CA certificate expired at ${loaded.notAfter.toISOString()}`);
    }
    caCert = loaded.cert;
    caKey = loaded.key;
    caCertPem = req.ca.cert;
    caKeyPem = req.ca.key;
    caNotAfter = loaded.notAfter;
  } else {
    const pair = newKeyPair(keyBits);
    caKeyPem = pair.keyPem;
    caKey = nativeSigner(createPrivateKey(pair.keyPem));
    caNotAfter = new Date(now.getTime() + (req.caValidityDays ?? DEFAULT_CA_VALIDITY_DAYS) * DAY_MS);
    caCert = forge.pki.createCertificate();
    caCert.publicKey = pair.forgePublic;
    caCert.serialNumber = randomSerial();
    caCert.validity.notBefore = notBefore;
    caCert.validity.notAfter = caNotAfter;
    // A distinct subject per CA, so a bundle holding the previous and the current CA stays unambiguous.
    const subject = [
      { name: 'commonName', value: `aws-secret-injector-ca-${Math.floor(now.getTime() / 1000)}-${caCert.serialNumber.slice(0, 8)}` },
    ];
    caCert.setSubject(subject);
    caCert.setIssuer(subject);
    caCert.setExtensions([
      { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
      { name: 'subjectKeyIdentifier' },
    ]);
    caCert.sign(caKey, md());
    caCertPem = pem(caCert);
  }

  const servingDays = req.validityDays ?? DEFAULT_VALIDITY_DAYS;
  const notAfter = new Date(Math.min(now.getTime() + servingDays * DAY_MS, caNotAfter.getTime()));
  const pair = newKeyPair(keyBits);
  const cert = forge.pki.createCertificate();
  cert.publicKey = pair.forgePublic;
  cert.serialNumber = randomSerial();
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = notAfter;
  cert.setSubject([{ name: 'commonName', value: commonName(sans.dnsNames[0] ?? sans.ipAddresses[0], 'aws-secret-injector') }]);
  cert.setIssuer(caCert.subject.attributes);
  const altNames: Array<{ type: number; value?: string; ip?: string }> = [
    ...sans.dnsNames.map((value) => ({ type: 2, value })),
    ...sans.ipAddresses.map((ip) => ({ type: 7, ip })),
  ];
  const caKeyId = caCert.generateSubjectKeyIdentifier().getBytes();
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: caKeyId },
  ]);
  cert.sign(caKey, md());

  return {
    caCert: caCertPem,
    caKey: caKeyPem,
    cert: pem(cert),
    key: pair.keyPem,
    notBefore,
    notAfter,
    caNotAfter,
  };
}
