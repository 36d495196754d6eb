import { describe, expect, it } from 'vitest';
import { fitTerminationMessage, formatFailure, formatReport, NOTHING_TO_REDACT, quoted, redactor, TERMINATION_MESSAGE_LIMIT } from './errors.js';

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
    const report = formatReport(
      [
        { code: 'FETCH_KEY_MISSING', ref: 'a', message: 'm1' },
        { code: 'FETCH_NO_REGION', ref: 'b', message: 'm2' },
      ],
      {},
      NOTHING_TO_REDACT,
    );
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

describe('redactor', () => {
  const values = ['hunter22-secret', 'first-line\nline-two-secret', 'a-very-long-api-token-0123456789abcdef', 'us-east-1', '123456789012', 'prod', 'db'];
  const redact = redactor(values, ['us-east-1', '123456789012', 'arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db']);

  it('removes whole values, each line of multi-line ones, and long runs of a value', () => {
    expect(redact(['pw hunter22-secret and line-two-secret here', 'cut: a-very-long-api-tok…'])).toEqual([
      'pw [REDACTED] and [REDACTED] here',
      'cut: [REDACTED]…',
    ]);
  });

  it('leaves what the report says itself, whatever a secret holds', () => {
    const text = 'User: arn:aws:sts::123456789012:assumed-role/web is not authorized on arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db';
    expect(redact([text])).toEqual([text]);
    // A reference's segments are what the report says too (reportedStrings lists them).
    expect(redactor(['prod'], ['prod'])(['in prod'])).toEqual(['in prod']);
  });

  it('hides a value of any length, a number of any length and any word that is a piece of a value', () => {
    const r = redactor(['7', 'pin', '123456', 'Pa55-w0rd-never-shown', '{"password":"x"}', 'abcdefghijklmnopqrstuvwxyz0123456789'], []);
    expect(r(['got 7 and pin and 123456 here'])).toEqual(['got [REDACTED] and [REDACTED] and [REDACTED] here']);
    // A short value only where it is a word of its own: not every 7 or "pin" inside other words.
    expect(r(['HTTP 307 spinning'])).toEqual(['HTTP 307 spinning']);
    expect(r(['it said w0rd, then never-shown'])).toEqual(['it said [REDACTED], then [REDACTED]-[REDACTED]']);
    expect(r(['key password missing'])).toEqual(['key [REDACTED] missing']);
    expect(r(['cut: klmnop…'])).toEqual(['cut: [REDACTED]…']);
  });

  it('hides a reported string that runs on into a value', () => {
    expect(redact(['x us-east-1:hunter22-secret y'])).toEqual(['x us-east-1:[REDACTED] y']);
    expect(redactor(['us-east-1-hunter22'], ['us-east-1'])(['x us-east-1-hunter22 y'])).toEqual(['x [REDACTED] y']);
  });

  it('takes values of any type (an endpoint may answer a number)', () => {
    expect(redactor([987654321123], [])(['Received type number (987654321123)'])).toEqual(['Received type number ([REDACTED])']);
  });

  it('ends a paragraph with one period when the quoted text has its own', () => {
    expect(formatFailure({ code: 'FETCH_AWS', message: `failed: ${quoted("can't find the specified secret.")}` })).toBe(
      "FETCH_AWS: failed: can't find the specified secret.",
    );
  });

  it('applies to quoted text only, in every paragraph of a report', () => {
    const report = formatReport(
      [
        { code: 'FETCH_AWS', ref: 'hunter22-secret', message: `GetSecretValue failed: ${quoted('it said hunter22-secret')}` },
        { code: 'FETCH_AWS', message: `unexpected TypeError: ${quoted('hunter22-secret')}` },
      ],
      {},
      redact,
    );
    expect(report).toContain('reference hunter22-secret: GetSecretValue failed: it said [REDACTED].');
    expect(report).toContain('unexpected TypeError: [REDACTED].');
    expect(report).not.toMatch(/[\uE000\uE001]/);
  });
});
