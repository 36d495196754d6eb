// Prometheus metrics of the webhook (prom-client), one registry per server so tests can run
// several side by side. Label values come from small fixed sets, except `namespace`, which is
// capped: a cluster (or anyone who can reach the port) cannot grow the series without bound.

import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ReviewOutcome } from './types.js';

/** Every outcome label: the review's own, plus what the HTTP shell decides before or after it. */
export type OutcomeLabel = ReviewOutcome | 'bad-request' | 'error';
export const OUTCOME_LABELS: readonly OutcomeLabel[] = ['injected', 'skipped', 'already-injected', 'denied', 'template-allowed', 'template-denied', 'stored', 'bad-request', 'error'];

/** Namespaces beyond this many distinct ones are counted under OTHER_NAMESPACE. */
export const MAX_NAMESPACES = 500;
export const OTHER_NAMESPACE = '_other';

export const METRIC_PREFIX = 'aws_secret_injector_';

export interface MetricsOptions {
  maxNamespaces?: number;
  /** Process metrics (CPU, memory, event loop lag, ...). On by default. */
  processMetrics?: boolean;
}

export class WebhookMetrics {
  readonly registry = new Registry();
  private readonly reviews: Counter<'outcome'>;
  private readonly duration: Histogram<'outcome'>;
  private readonly injections: Counter<'namespace'>;
  private readonly denials: Counter<'namespace'>;
  private readonly tlsReloads: Counter<'result'>;
  private readonly tlsNotAfter: Gauge;
  private readonly namespaces = new Set<string>();
  private readonly maxNamespaces: number;

  constructor(opts: MetricsOptions = {}) {
    this.maxNamespaces = opts.maxNamespaces ?? MAX_NAMESPACES;
    const registers = [this.registry];
    this.reviews = new Counter({
      name: `${METRIC_PREFIX}reviews_total`,
      help: 'Admission reviews answered, by outcome (bad-request: not a usable AdmissionReview; error: internal failure).',
      labelNames: ['outcome'],
      registers,
    });
    this.duration = new Histogram({
      name: `${METRIC_PREFIX}review_duration_seconds`,
      help: 'Time to answer one admission review, from the first byte of the request (body receipt and parsing included), by outcome.',
      labelNames: ['outcome'],
      // A review is pure CPU work of well under a millisecond; the tail reaches GC pauses.
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
    this.injections = new Counter({
      name: `${METRIC_PREFIX}injections_total`,
      help: `Pods injected (not counting dry runs), by namespace (at most ${this.maxNamespaces} namespaces, the rest as "${OTHER_NAMESPACE}").`,
      labelNames: ['namespace'],
      registers,
    });
    this.denials = new Counter({
      name: `${METRIC_PREFIX}denials_total`,
      help: `Pods denied for bad annotations or an injection that would break them (not counting dry runs), by namespace (capped like injections_total).`,
      labelNames: ['namespace'],
      registers,
    });
    this.tlsReloads = new Counter({
      name: `${METRIC_PREFIX}tls_reloads_total`,
      help: 'Changes of the TLS files seen, by result (reloaded, or invalid: kept the previous certificate).',
      labelNames: ['result'],
      registers,
    });
    this.tlsNotAfter = new Gauge({
      name: `${METRIC_PREFIX}tls_certificate_expiry_timestamp_seconds`,
      help: 'notAfter of the serving certificate in service, in Unix seconds.',
      registers,
    });
    for (const outcome of OUTCOME_LABELS) this.reviews.inc({ outcome }, 0);
    for (const result of ['reloaded', 'invalid']) this.tlsReloads.inc({ result }, 0);
    if (opts.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: METRIC_PREFIX });
  }

  observeReview(outcome: OutcomeLabel, seconds: number, namespace: string | undefined, dryRun: boolean): void {
    this.reviews.inc({ outcome });
    this.duration.observe({ outcome }, seconds);
    if (dryRun || namespace === undefined) return;
    if (outcome === 'injected') this.injections.inc({ namespace: this.namespaceLabel(namespace) });
    else if (outcome === 'denied') this.denials.inc({ namespace: this.namespaceLabel(namespace) });
  }

  tlsInService(notAfter: Date): void {
    this.tlsNotAfter.set(Math.floor(notAfter.getTime() / 1000));
  }

  tlsReload(result: 'reloaded' | 'invalid'): void {
    this.tlsReloads.inc({ result });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }

  private namespaceLabel(namespace: string): string {
    if (this.namespaces.has(namespace)) return namespace;
    // Kubernetes namespace names are DNS labels; anything else did not come from an apiserver.
    if (this.namespaces.size >= this.maxNamespaces || !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(namespace)) {
      return OTHER_NAMESPACE;
    }
    this.namespaces.add(namespace);
    return namespace;
  }
}
