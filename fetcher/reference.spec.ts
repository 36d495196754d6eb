import { describe, expect, it } from 'vitest';
import { parsePathReference, parseReference } from './reference.js';

describe('parseReference', () => {
  it.each([
    [
      'arn:aws:secretsmanager:eu-west-1:123456789012:secret:db/password-AbCdEf',
      { service: 'secretsmanager', kind: 'arn', name: 'db/password', region: 'eu-west-1', account: '123456789012', partition: 'aws' },
    ],
    [
      'arn:aws:secretsmanager:eu-west-1:123456789012:secret:db/password',
      { service: 'secretsmanager', kind: 'partial-arn', name: 'db/password', region: 'eu-west-1' },
    ],
    ['db/password', { service: 'secretsmanager', kind: 'name', name: 'db/password', id: 'db/password' }],
    [
      'arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:x-123456',
      { kind: 'arn', partition: 'aws-us-gov', region: 'us-gov-west-1', name: 'x' },
    ],
    [
      'arn:aws:ssm:us-east-1:123456789012:parameter/app/db/password',
      { service: 'ssm', kind: 'arn', name: '/app/db/password', region: 'us-east-1', account: '123456789012' },
    ],
    ['arn:aws:ssm:us-east-1:123456789012:parameter/flat', { service: 'ssm', name: 'flat' }],
    // The name RDS gives the secret of a database whose credentials Secrets Manager manages.
    [
      'arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0-Ab12Cd',
      { service: 'secretsmanager', kind: 'arn', name: 'rds!db-0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0' },
    ],
  ])('%s', (raw, expected) => {
    const r = parseReference(raw);
    expect('reference' in r && r.reference).toMatchObject(expected);
    if ('reference' in r) expect(r.reference.id).toBe(raw);
  });

  it.each([
    ['', /empty/],
    ['has space', /neither an ARN nor a valid secret name/],
    ['arn:aws:secretsmanager:eu-west-1:123456789012', /not a valid ARN/],
    ['arn:aws:secretsmanager:nowhere:123456789012:secret:x', /region "nowhere"/],
    ['arn:aws:secretsmanager:eu-west-1:1234:secret:x', /12-digit/],
    ['arn:aws:secretsmanager:eu-west-1:123456789012:key:x', /must start with "secret:"/],
    ['arn:aws:ssm:eu-west-1:123456789012:parameter/', /parameter name "" is not valid/],
    ['arn:aws:ssm:eu-west-1:123456789012:parameter/a//b', /not valid/],
    ['arn:aws:kms:eu-west-1:123456789012:key/x', /only secretsmanager and ssm/],
  ])('rejects %j', (raw, message) => {
    const r = parseReference(raw);
    expect('error' in r && r.error).toMatch(message);
  });
});

describe('parsePathReference', () => {
  it.each([
    ['prod/app/*', { service: 'secretsmanager', prefix: 'prod/app/', id: 'prod/app/*' }],
    ['arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/*', { service: 'secretsmanager', prefix: 'prod/', region: 'eu-west-1', account: '123456789012' }],
    ['arn:aws:ssm:us-east-1:123456789012:parameter/prod/app/*', { service: 'ssm', path: '/prod/app', region: 'us-east-1', account: '123456789012' }],
    ['arn:aws:ssm:us-east-1:123456789012:parameter/prod/*', { service: 'ssm', path: '/prod' }],
  ])('%s', (raw, expected) => {
    const r = parsePathReference(raw);
    expect('path' in r && r.path).toMatchObject(expected);
  });

  it.each([
    ['prod/app', 'must end in "/*"'],
    ['/*', 'names no prefix'],
    ['!prod/*', 'which a Secrets Manager name filter reads as "not"'],
    ['arn:aws:ssm:us-east-1:123456789012:parameter/*', 'names no parameter path'],
    ['prod/a*/*', 'is neither an ARN nor a valid secret name'],
    ['arn:aws:s3:::bucket/*', 'only secretsmanager and ssm'],
  ])('refuses %s: %s', (raw, message) => {
    const r = parsePathReference(raw);
    expect('error' in r && r.error).toContain(message);
  });
});
