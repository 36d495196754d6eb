import { describe, expect, it } from 'vitest';
import { parseReference } from './reference.js';

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
