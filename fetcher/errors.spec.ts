import { describe, expect, it } from 'vitest';
import { fitTerminationMessage, formatFailure, formatReport, redact, TERMINATION_MESSAGE_LIMIT } from './errors.js';

describe('formatFailure', () => {
  it('puts code, reference, AWS code, identity and hint in one paragraph', () => {
    const text = formatFailure(
      { code: 'FETCH_AWS', ref: 'db', awsCode: 'AccessDeniedException', message: 'GetSecretValue failed', hint: 'allow it' },
      { identity: 'arn:aws:sts::123456789012:assumed-role/app/pod' },
    );
    expect(text).toBe(
      'FETCH_AWS: reference db: GetSecretValue failed. AWS error code: AccessDeniedException. ' +
        'Identity: arn:aws:sts::123456789012:assumed-role/app/pod. Hint: allow it.',
    );
    expect(text).not.toContain('\n');
  });

  it('says why the identity is unknown', () => {
    expect(formatFailure({ code: 'FETCH_AWS', message: 'x' }, { identityError: 'STS GetCallerIdentity failed: AccessDenied' })).toContain(
      'Identity: unknown (STS GetCallerIdentity failed: AccessDenied).',
    );
  });

  it('reports every failure', () => {
    const report = formatReport([
      { code: 'FETCH_KEY_MISSING', ref: 'a', message: 'm1' },
      { code: 'FETCH_NO_REGION', ref: 'b', message: 'm2' },
    ]);
    expect(report.split('\n\n')).toHaveLength(3);
    expect(report).toMatch(/^fetch failed \(2 problems\):/);
  });
});

describe('fitTerminationMessage', () => {
  it('keeps a short report as it is', () => {
    expect(fitTerminationMessage('a\n\nb\n')).toBe('a\n\nb\n');
  });

  it('cuts on paragraph boundaries within the limit and says how many were left out', () => {
    const paragraphs = Array.from({ length: 100 }, (_, i) => `FETCH_AWS: reference secret-${i}: ${'x'.repeat(80)}.`);
    const out = fitTerminationMessage(['fetch failed:', ...paragraphs].join('\n\n') + '\n');
    expect(Buffer.byteLength(out)).toBeLessThanOrEqual(TERMINATION_MESSAGE_LIMIT);
    expect(out).toMatch(/… and \d+ more \(see the container log\)\.\n$/);
    expect(out).toContain('reference secret-0:');
  });

  it('cuts even a single huge paragraph', () => {
    const out = fitTerminationMessage('y'.repeat(10_000));
    expect(Buffer.byteLength(out)).toBeLessThanOrEqual(TERMINATION_MESSAGE_LIMIT);
  });
});

describe('redact', () => {
  it('removes known values and each line of multi-line ones', () => {
    const out = redact('pw hunter22 and line-two-secret here', ['hunter22', 'first-line\nline-two-secret']);
    expect(out).toBe('pw [REDACTED] and [REDACTED] here');
  });

  it('leaves very short values alone', () => {
    expect(redact('a b c', ['a'])).toBe('a b c');
  });
});
