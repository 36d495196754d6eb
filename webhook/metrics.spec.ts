import { describe, expect, it } from 'vitest';
import { OTHER_NAMESPACE, WebhookMetrics } from './metrics.js';

const line = (text: string, name: string): string[] => text.split('\n').filter((l) => l.startsWith(name));

describe('WebhookMetrics', () => {
  it('starts every outcome at zero so dashboards see the series before the first review', async () => {
    const text = await new WebhookMetrics({ processMetrics: false }).render();
    for (const o of ['injected', 'skipped', 'already-injected', 'denied', 'template-allowed', 'template-denied', 'bad-request', 'error']) {
      expect(text).toContain(`aws_secret_injector_reviews_total{outcome="${o}"} 0`);
    }
  });

  it('counts injections and denials by namespace, not dry runs', async () => {
    const m = new WebhookMetrics({ processMetrics: false });
    m.observeReview('injected', 0.001, 'a', false);
    m.observeReview('injected', 0.001, 'a', true);
    m.observeReview('denied', 0.001, 'b', false);
    m.observeReview('skipped', 0.001, 'c', false);
    const text = await m.render();
    expect(line(text, 'aws_secret_injector_injections_total{')).toEqual(['aws_secret_injector_injections_total{namespace="a"} 1']);
    expect(line(text, 'aws_secret_injector_denials_total{')).toEqual(['aws_secret_injector_denials_total{namespace="b"} 1']);
    expect(text).toContain('aws_secret_injector_reviews_total{outcome="injected"} 2');
    expect(text).toContain('aws_secret_injector_review_duration_seconds_count{outcome="injected"} 2');
  });

  it('caps the namespace label and refuses values that are not namespace names', async () => {
    const m = new WebhookMetrics({ processMetrics: false, maxNamespaces: 3 });
    for (const ns of ['n1', 'n2', 'n3', 'n4', 'n5', 'n1']) m.observeReview('injected', 0, ns, false);
    m.observeReview('injected', 0, 'Not_A_Namespace', false);
    m.observeReview('injected', 0, 'x'.repeat(64), false);
    const series = line(await m.render(), 'aws_secret_injector_injections_total{');
    expect(series).toEqual([
      'aws_secret_injector_injections_total{namespace="n1"} 2',
      'aws_secret_injector_injections_total{namespace="n2"} 1',
      'aws_secret_injector_injections_total{namespace="n3"} 1',
      `aws_secret_injector_injections_total{namespace="${OTHER_NAMESPACE}"} 4`,
    ]);
  });

  it('reports TLS reloads and the expiry of the certificate in service', async () => {
    const m = new WebhookMetrics({ processMetrics: false });
    m.tlsInService(new Date('2030-01-01T00:00:00Z'));
    m.tlsReload('reloaded');
    const text = await m.render();
    expect(text).toContain('aws_secret_injector_tls_certificate_expiry_timestamp_seconds 1893456000');
    expect(text).toContain('aws_secret_injector_tls_reloads_total{result="reloaded"} 1');
    expect(text).toContain('aws_secret_injector_tls_reloads_total{result="invalid"} 0');
  });

  it('keeps registries apart and includes process metrics by default', async () => {
    const a = new WebhookMetrics();
    const b = new WebhookMetrics();
    a.observeReview('skipped', 0, undefined, false);
    expect(await b.render()).toContain('aws_secret_injector_reviews_total{outcome="skipped"} 0');
    expect(await a.render()).toContain('aws_secret_injector_process_resident_memory_bytes');
  });
});
