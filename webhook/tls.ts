// The serving certificate: read and check a certificate/key pair, make a development certificate,
// and reload the pair when its files change. The kubelet updates a mounted Secret by writing a
// new timestamped directory and swapping the `..data` symlink, so the files' own inodes never
// change: we watch the directories that hold them and also poll, and swap a new pair in only once
// both files are readable and belong together.

import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { realpathSync, watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createSecureContext } from 'node:tls';
import type { Logger } from 'pino';
import { generateCertificates } from '../certs/generate.js';

export type TlsErrorCode =
  | 'WEBHOOK_TLS_UNREADABLE' // the certificate or key file cannot be read (missing, no permission)
  | 'WEBHOOK_TLS_INVALID'; // the files are not a PEM certificate and a matching, unencrypted key

export class TlsError extends Error {
  constructor(
    readonly code: TlsErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'TlsError';
  }
}

export interface TlsPair {
  cert: string;
  key: string;
  /** SHA-256 fingerprint of the leaf certificate, as Node prints it (AA:BB:...). */
  fingerprint: string;
  notBefore: Date;
  notAfter: Date;
  /** DNS and IP subject alternative names of the leaf, for logs. */
  subjectAltName: string;
}

/** Checks that `cert` (a PEM chain, leaf first) and `key` (PEM) form a pair Node can serve. */
export function checkPair(cert: string, key: string, where = 'TLS certificate'): TlsPair {
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch {
    throw new TlsError('WEBHOOK_TLS_INVALID', `${where}: the certificate is not a PEM X.509 certificate`);
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new TlsError('WEBHOOK_TLS_INVALID', `${where}: the key is not a PEM private key (or it is encrypted)`);
  }
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new TlsError('WEBHOOK_TLS_INVALID', `${where}: the key does not belong to the certificate`);
  }
  try {
    createSecureContext({ cert, key });
  } catch (e) {
    throw new TlsError('WEBHOOK_TLS_INVALID', `${where}: Node cannot serve this pair (${(e as Error).message})`);
  }
  return {
    cert,
    key,
    fingerprint: leaf.fingerprint256,
    notBefore: new Date(leaf.validFrom),
    notAfter: new Date(leaf.validTo),
    subjectAltName: leaf.subjectAltName ?? '',
  };
}

/** Reads and checks the pair at `certFile`/`keyFile`. */
export async function readPair(certFile: string, keyFile: string): Promise<TlsPair> {
  const read = await Promise.allSettled([readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]);
  const problems = read.flatMap((r, i) =>
    r.status === 'rejected' ? [`cannot read ${i === 0 ? certFile : keyFile} (${(r.reason as NodeJS.ErrnoException).code ?? 'error'})`] : [],
  );
  if (problems.length > 0) throw new TlsError('WEBHOOK_TLS_UNREADABLE', problems.join('; '));
  const [cert, key] = read.map((r) => (r as PromiseFulfilledResult<string>).value);
  return checkPair(cert!, key!, `${certFile} + ${keyFile}`);
}

/** A self-signed certificate for localhost, 127.0.0.1 and ::1: `npm start` on a workstation. */
export function developmentPair(): TlsPair & { caCert: string } {
  const bundle = generateCertificates({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'] });
  return { ...checkPair(bundle.cert, bundle.key, 'development certificate'), caCert: bundle.caCert };
}

/** Fields worth logging about a pair (never the key). */
export function describePair(pair: TlsPair): Record<string, string> {
  return {
    fingerprint: pair.fingerprint,
    notAfter: pair.notAfter.toISOString(),
    subjectAltName: pair.subjectAltName,
  };
}

export interface ReloaderOptions {
  certFile: string;
  keyFile: string;
  /** The pair being served now. */
  current: TlsPair;
  /** Puts a new pair into service (server.setSecureContext). */
  apply: (pair: TlsPair) => void;
  log: Logger;
  /** Called after each attempt that found changed files. */
  onResult?: (result: 'reloaded' | 'invalid', pair?: TlsPair) => void;
  /** Poll period; file-system events usually make a reload faster than this. */
  pollMs?: number;
  /** Events come in bursts while files are being replaced; wait this long after the last one. */
  debounceMs?: number;
}

export const DEFAULT_POLL_MS = 10_000;

const digest = (cert: string, key: string): string => createHash('sha256').update(cert).update('\0').update(key).digest('hex');

/** Watches the certificate and key files and swaps a changed, valid pair into service. */
export class TlsReloader {
  private readonly watchers = new Map<string, FSWatcher>();
  private timer: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private served: string;
  private lastRejected: string | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private closed = false;

  constructor(private readonly opts: ReloaderOptions) {
    this.served = digest(opts.current.cert, opts.current.key);
  }

  start(): void {
    this.rewatch();
    this.timer = setInterval(() => void this.check(), this.opts.pollMs ?? DEFAULT_POLL_MS);
    this.timer.unref();
  }

  // The directories of the configured paths (where the kubelet swaps `..data`) and of the files
  // they resolve to now (where a hand edit lands); re-resolved after every check.
  private rewatch(): void {
    if (this.closed) return;
    const dirs = new Set<string>();
    for (const file of [this.opts.certFile, this.opts.keyFile]) {
      dirs.add(dirname(file));
      try {
        dirs.add(dirname(realpathSync(file)));
      } catch {
        // Missing for now; the poll and the parent directory's events cover it.
      }
    }
    for (const [dir, w] of this.watchers) {
      if (!dirs.has(dir)) {
        w.close();
        this.watchers.delete(dir);
      }
    }
    for (const dir of dirs) {
      if (this.watchers.has(dir)) continue;
      try {
        const w = watch(dir, { persistent: false }, () => this.schedule());
        // A watcher that fails (directory removed, inotify limits) leaves the poll to do the work.
        w.on('error', () => {
          w.close();
          if (this.watchers.get(dir) === w) this.watchers.delete(dir);
        });
        this.watchers.set(dir, w);
      } catch (e) {
        this.opts.log.debug({ dir, code: (e as NodeJS.ErrnoException).code }, 'cannot watch a TLS directory; polling covers it');
      }
    }
  }

  close(): void {
    this.closed = true;
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
    clearInterval(this.timer);
    clearTimeout(this.debounce);
  }

  private schedule(): void {
    if (this.closed) return;
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => void this.check(), this.opts.debounceMs ?? 200);
    this.debounce.unref();
  }

  /** Reads the files once; reloads when they changed and form a valid pair. Never throws. */
  check(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.checkOnce().finally(() => {
      this.running = undefined;
      this.rewatch();
      if (this.again && !this.closed) {
        this.again = false;
        void this.check();
      }
    });
    return this.running;
  }

  private async checkOnce(): Promise<void> {
    const { certFile, keyFile, log } = this.opts;
    let cert: string;
    let key: string;
    try {
      [cert, key] = await Promise.all([readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]);
    } catch (e) {
      // Mid-swap a file can be missing for a moment; the next event or poll tries again.
      log.debug({ code: (e as NodeJS.ErrnoException).code }, 'TLS files not readable right now; keeping the current certificate');
      return;
    }
    const hash = digest(cert, key);
    if (this.closed || hash === this.served || hash === this.lastRejected) return;
    let pair: TlsPair;
    try {
      pair = checkPair(cert, key, `${certFile} + ${keyFile}`);
    } catch (e) {
      this.lastRejected = hash;
      log.warn({ code: (e as TlsError).code, reason: (e as Error).message }, 'TLS files changed but are not a valid pair; keeping the current certificate');
      this.opts.onResult?.('invalid');
      return;
    }
    try {
      this.opts.apply(pair);
    } catch (e) {
      this.lastRejected = hash;
      log.error({ reason: (e as Error).message }, 'cannot put the new TLS certificate into service; keeping the current one');
      this.opts.onResult?.('invalid');
      return;
    }
    this.served = hash;
    this.lastRejected = undefined;
    log.info(describePair(pair), 'TLS certificate reloaded; new connections use it');
    this.opts.onResult?.('reloaded', pair);
  }
}
