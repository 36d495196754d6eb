import { describe, expect, it } from 'vitest';
import { chooseCredentials, type CredentialChoice } from './identity.js';

const IRSA = { AWS_ROLE_ARN: 'arn:aws:iam::123456789012:role/web', AWS_WEB_IDENTITY_TOKEN_FILE: '/var/run/token' };
const POD_IDENTITY = {
  AWS_CONTAINER_CREDENTIALS_FULL_URI: 'http://169.254.170.23/v1/credentials',
  AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: '/var/run/pod-identity/token',
};
const KEYS = { AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE', AWS_SECRET_ACCESS_KEY: 'example' };

const kind = (c: CredentialChoice) => ('source' in c ? c.source.kind : c.failure.code);

describe('chooseCredentials', () => {
  it.each<[string, Record<string, string>, string]>([
    ['IRSA', IRSA, 'web-identity'],
    ['Pod Identity', POD_IDENTITY, 'pod-identity'],
    ['IRSA before Pod Identity (the SDK order)', { ...POD_IDENTITY, ...IRSA }, 'web-identity'],
    ['IRSA before keys, even with the opt-in', { ...KEYS, ...IRSA, SECRET_INJECTOR_NODE_CREDENTIALS: 'allow' }, 'web-identity'],
    ['nothing', {}, 'FETCH_NO_IDENTITY'],
    ['keys without the opt-in', KEYS, 'FETCH_NO_IDENTITY'],
    ['a profile without the opt-in', { AWS_PROFILE: 'dev' }, 'FETCH_NO_IDENTITY'],
    ['the opt-in set to deny', { ...KEYS, SECRET_INJECTOR_NODE_CREDENTIALS: 'deny' }, 'FETCH_NO_IDENTITY'],
    ['ECS relative URI (not a Kubernetes identity)', { AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: '/v2/creds' }, 'FETCH_NO_IDENTITY'],
    ['half of IRSA', { AWS_ROLE_ARN: IRSA.AWS_ROLE_ARN }, 'FETCH_NO_IDENTITY'],
    ['empty IRSA variables', { AWS_ROLE_ARN: '', AWS_WEB_IDENTITY_TOKEN_FILE: '' }, 'FETCH_NO_IDENTITY'],
    ['the opt-in alone (instance metadata)', { SECRET_INJECTOR_NODE_CREDENTIALS: 'allow' }, 'node'],
    ['the opt-in with keys', { ...KEYS, SECRET_INJECTOR_NODE_CREDENTIALS: 'allow' }, 'node'],
    ['an opt-in value that means nothing', { ...IRSA, SECRET_INJECTOR_NODE_CREDENTIALS: 'true' }, 'FETCH_SPEC_INVALID'],
  ])('%s -> %s', (_name, env, expected) => {
    expect(kind(chooseCredentials(env))).toBe(expected);
  });

  it('takes the IRSA and Pod Identity coordinates from the environment', () => {
    expect(chooseCredentials(IRSA)).toEqual({ source: { kind: 'web-identity', roleArn: IRSA.AWS_ROLE_ARN, tokenFile: IRSA.AWS_WEB_IDENTITY_TOKEN_FILE } });
    expect(chooseCredentials(POD_IDENTITY)).toEqual({
      source: { kind: 'pod-identity', fullUri: POD_IDENTITY.AWS_CONTAINER_CREDENTIALS_FULL_URI, tokenFile: POD_IDENTITY.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE },
    });
  });

  it('says what is missing, what was ignored, and how to give the pod an identity', () => {
    const c = chooseCredentials({ AWS_WEB_IDENTITY_TOKEN_FILE: '/t', ...KEYS });
    if (!('failure' in c)) throw new Error('expected a failure');
    expect(c.failure.message).toContain('IRSA is incomplete: AWS_ROLE_ARN is not set');
    expect(c.failure.message).toContain('AWS_ACCESS_KEY_ID is set but not used');
    expect(c.failure.message).toContain('no AWS call was made');
    expect(c.failure.message).not.toContain('AKIAEXAMPLE');
    expect(c.failure.hint).toMatch(/IRSA .*EKS Pod Identity.*FETCHER_NODE_CREDENTIALS=allow/);
  });
});
