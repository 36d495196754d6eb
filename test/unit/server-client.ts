// A small HTTPS client for the server tests: one request, the whole answer, and the certificate
// the server presented. Each call opens its own connection unless an agent is given.

import { request, type Agent } from 'node:https';
import { Writable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { pino } from 'pino';
import { generateCertificates } from '../../certs/generate.js';
import { WebhookMetrics } from '../../webhook/metrics.js';
import { review } from '../../webhook/review.js';
import { reviewTemplate } from '../../webhook/templates.js';
import { buildServer, type ServerLimits, type WebhookServer } from '../../webhook/server.js';
import { DEFAULT_MUTATION_CONFIG } from '../../webhook/types.js';

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** SHA-256 fingerprint of the certificate the server presented. */
  fingerprint: string;
}

export interface CallOptions {
  method?: string;
  path?: string;
  body?: string | Buffer;
  headers?: Record<string, string>;
  ca: string | string[];
  agent?: Agent;
  servername?: string;
}

export function call(port: number, opts: CallOptions): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method: opts.method ?? 'POST',
        path: opts.path ?? '/mutate',
        ca: opts.ca,
        agent: opts.agent ?? false,
        headers: {
          ...(opts.body !== undefined && opts.headers?.['transfer-encoding'] === undefined ? { 'content-length': String(Buffer.byteLength(opts.body)) } : {}),
          ...opts.headers,
        },
        timeout: 20_000,
      },
      (res) => {
        const fingerprint = (res.socket as TLSSocket).getPeerCertificate().fingerprint256;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), fingerprint }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(opts.body);
  });
}

export function postJson(port: number, ca: string | string[], value: unknown, agent?: Agent): Promise<Answer> {
  const body = JSON.stringify(value);
  return call(port, { body, ca, headers: { 'content-type': 'application/json' }, ...(agent ? { agent } : {}) });
}

/** An AdmissionReview as kube-apiserver sends it for a pod CREATE. */
export function podReview(opts: {
  uid?: string;
  namespace?: string;
  name?: string;
  annotations?: Record<string, string>;
  env?: Array<{ name: string; value: string }>;
  dryRun?: boolean;
}): Record<string, unknown> {
  const namespace = opts.namespace ?? 'default';
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: opts.name ?? 'webserver', namespace, annotations: opts.annotations ?? {} },
    spec: {
      containers: [{ name: 'webserver', image: 'busybox', command: ['sh', '-c', 'sleep 3600'], env: opts.env ?? [] }],
    },
  };
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: opts.uid ?? '705ab4f5-6393-11e8-b7cc-42010a800002',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' },
      requestResource: { group: '', version: 'v1', resource: 'pods' },
      name: opts.name ?? 'webserver',
      namespace,
      operation: 'CREATE',
      userInfo: { username: 'admin', groups: ['system:masters', 'system:authenticated'] },
      object: pod,
      oldObject: null,
      dryRun: opts.dryRun ?? false,
      options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions' },
    },
  };
}

/**
 * The real review handler behind the real HTTP shell, over TLS on a free port of 127.0.0.1, with a
 * certificate for localhost and 127.0.0.1 and its log lines collected into a string.
 */
export async function listenInProcess(limits?: ServerLimits): Promise<{ app: WebhookServer; port: number; ca: string; log: () => string }> {
  const certs = generateCertificates({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  let log = '';
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      log += chunk.toString();
      cb();
    },
  });
  const app = buildServer(
    { mutation: DEFAULT_MUTATION_CONFIG },
    { review, reviewTemplate, logger: pino({ level: 'info' }, sink), metrics: new WebhookMetrics({ processMetrics: false }), tls: certs, ...(limits ? { limits } : {}) },
  );
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, port: (app.server.address() as { port: number }).port, ca: certs.caCert, log: () => log };
}
