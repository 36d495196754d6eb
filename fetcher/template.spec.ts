import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_PLACEHOLDERS, parseTemplate, renderTemplate } from './template.js';

// An RDS-managed secret as Secrets Manager stores it for a PostgreSQL instance.
const RDS = { engine: 'postgres', username: 'app', password: 'S3cr3t-VALUE', host: 'db.abc.eu-west-1.rds.amazonaws.com', port: 5432, dbname: 'orders', dbInstanceIdentifier: 'orders-db' };

function render(template: string, value: unknown): string {
  const t = parseTemplate(template);
  if ('error' in t) throw new Error(t.error);
  const r = renderTemplate(t.parts, value);
  if ('missing' in r) throw new Error(JSON.stringify(r.missing));
  return r.text;
}

describe('templates', () => {
  it('renders an RDS-managed secret into a connection URL and a .pgpass line', () => {
    expect(render('postgresql://{{ username }}:{{ password }}@{{ host }}:{{ port }}/{{ dbname }}?sslmode=verify-full', RDS)).toBe(
      'postgresql://app:S3cr3t-VALUE@db.abc.eu-west-1.rds.amazonaws.com:5432/orders?sslmode=verify-full',
    );
    expect(render('{{host}}:{{port}}:{{dbname}}:{{username}}:{{password}}\n', RDS)).toBe('db.abc.eu-west-1.rds.amazonaws.com:5432:orders:app:S3cr3t-VALUE\n');
  });

  it('reaches nested values by dotted names and JSON Pointers; values are never escaped', () => {
    const v = { db: { hosts: ['a.example', 'b.example'], 'x.y': '<&"\'>' }, flag: true, n: null };
    expect(render('{{ db.hosts.1 }} {{ /db/x.y }} {{flag}} {{ n }} {{ db.hosts }}', v)).toBe('b.example <&"\'> true null ["a.example","b.example"]');
  });

  it('keeps text around and between placeholders, and a lone "}}"', () => {
    expect(render('a }} b {{x}}{{x}} c', { x: '1' })).toBe('a }} b 11 c');
  });

  it('does not look for placeholders in values', () => {
    expect(render('{{ a }}', { a: '{{ b }}', b: 'SECRET' })).toBe('{{ b }}');
  });

  it('names every placeholder that finds nothing, never a value', () => {
    const t = parseTemplate('{{ username }}:{{ pasword }}@{{ host.name }}');
    if ('error' in t) throw new Error(t.error);
    const r = renderTemplate(t.parts, RDS);
    expect(r).toEqual({
      missing: [
        { placeholder: '{{ pasword }}', why: 'no key "pasword" at the top level' },
        { placeholder: '{{ host.name }}', why: '/host is not an object or array' },
      ],
    });
    expect(JSON.stringify(r)).not.toContain('VALUE');
  });

  it(`refuses more than ${MAX_PLACEHOLDERS} placeholders`, () => {
    expect(parseTemplate('{{a}}'.repeat(MAX_PLACEHOLDERS))).toHaveProperty('parts');
    expect(parseTemplate('{{a}}'.repeat(MAX_PLACEHOLDERS + 1))).toEqual({ error: `has more than ${MAX_PLACEHOLDERS} placeholders` });
  });

  it('text without "{{" renders as itself around any placeholder', () => {
    fc.assert(
      fc.property(fc.string().filter((s) => !s.includes('{{') && !s.endsWith('{') && !s.startsWith('}')), fc.string().filter((s) => !s.includes('{{') && !s.startsWith('}')), (a, b) => {
        expect(render(`${a}{{ k }}${b}`, { k: 'v' })).toBe(`${a}v${b}`);
      }),
    );
  });
});
