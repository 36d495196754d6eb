import { describe, expect, it } from 'vitest';
import { CA_BUNDLE_DIR } from '../fetcher/spec.js';
import { PREFIX } from './annotations.js';
import { FETCHER_DIR } from './mutate.js';
import { reviewPod } from './review.js';
import { DEFAULT_MUTATION_CONFIG as CONFIG, type MutationConfig } from './types.js';

const ARN = (region: string) => `arn:aws:secretsmanager:${region}:123456789012:secret:db-AbCdEf`;
const SSM = (region: string) => `arn:aws:ssm:${region}:123456789012:parameter/app/db`;
const IRSA_ENV = (file: string) => [
  { name: 'AWS_ROLE_ARN', value: 'arn:aws:iam::123456789012:role/app' },
  { name: 'AWS_WEB_IDENTITY_TOKEN_FILE', value: file },
];

function pod(annotations: Record<string, string>, app: Record<string, unknown> = {}, volumes: unknown[] = []): unknown {
  return {
    metadata: { name: 'app', annotations: { [`${PREFIX}secret-arn`]: ARN('us-east-1'), ...annotations } },
    spec: { containers: [{ name: 'app', image: 'busybox', ...app }], volumes },
  };
}

function denial(p: unknown, config: MutationConfig = CONFIG): Array<{ code: string; subject: string; message: string }> {
  const out = reviewPod(p, config);
  if (out.outcome !== 'denied') return [];
  return out.groups.flatMap((g) => g.problems.map((x) => ({ code: x.code, subject: x.subject, message: x.message })));
}

const projected = { name: 'aws-iam-token', projected: { sources: [{ serviceAccountToken: { audience: 'sts.amazonaws.com', path: 'token' } }] } };

describe('token mounts the fetcher would copy', () => {
  it.each([
    ['at the fetcher\'s own volume path', FETCHER_DIR, `${FETCHER_DIR}/token`, 'is'],
    ['inside it', `${FETCHER_DIR}/sa`, `${FETCHER_DIR}/sa/token`, 'lies inside'],
  ])('refuses a token mount %s, which would give the fetcher two mounts at one path', (_what, mountPath, file, verb) => {
    const p = pod({}, { env: IRSA_ENV(file), volumeMounts: [{ name: 'aws-iam-token', mountPath, readOnly: true }] }, [projected]);
    expect(denial(p)).toEqual([
      {
        code: 'WEBHOOK_MOUNT_CLASH',
        subject: 'spec.containers[0].env[AWS_WEB_IDENTITY_TOKEN_FILE]',
        message: expect.stringContaining(`which ${verb} the fetcher's own mount ${FETCHER_DIR}`),
      },
    ]);
  });

  it('refuses a token mount over the CA bundle\'s path when the CA bundle is on', () => {
    const p = pod({}, { env: IRSA_ENV('/etc/aws-secret-injector/token'), volumeMounts: [{ name: 'aws-iam-token', mountPath: '/etc/aws-secret-injector', readOnly: true }] }, [projected]);
    expect(reviewPod(p, CONFIG).outcome).toBe('injected');
    expect(denial(p, { ...CONFIG, fetcherCaBundle: { configMap: 'ca', key: 'ca.crt' } })).toEqual([
      expect.objectContaining({ code: 'WEBHOOK_MOUNT_CLASH', message: expect.stringContaining(`holds the fetcher's own mount ${CA_BUNDLE_DIR}`) }),
    ]);
  });

  it('refuses a token inside a hostPath volume and never copies the hostPath', () => {
    const host = { name: 'node-dir', hostPath: { path: '/var/lib/tokens' } };
    const p = pod({}, { env: IRSA_ENV('/var/lib/tokens/app/token'), volumeMounts: [{ name: 'node-dir', mountPath: '/var/lib/tokens' }] }, [host]);
    expect(denial(p)).toEqual([
      {
        code: 'WEBHOOK_UNSUPPORTED_POD',
        subject: 'spec.containers[0].env[AWS_WEB_IDENTITY_TOKEN_FILE]',
        message: expect.stringContaining('volume "node-dir", a hostPath, which the fetcher never mounts'),
      },
    ]);
  });

  it('still copies the usual projected token mount (EKS\'s path)', () => {
    const dir = '/var/run/secrets/eks.amazonaws.com/serviceaccount';
    const p = pod({}, { env: IRSA_ENV(`${dir}/token`), volumeMounts: [{ name: 'aws-iam-token', mountPath: dir, readOnly: true }] }, [projected]);
    const out = reviewPod(p, CONFIG);
    expect(out.outcome).toBe('injected');
    if (out.outcome === 'injected') expect(out.pod.spec.initContainers![0]!.volumeMounts).toContainEqual({ name: 'aws-iam-token', mountPath: dir, readOnly: true });
  });
});

describe('endpoint overrides at admission', () => {
  const http = { ...CONFIG, fetcherNetworkEnv: [{ name: 'AWS_ENDPOINT_URL_STS' as const, value: 'http://moto.test.svc:5000' }] };
  it('refuses a pod while an endpoint override is plain http://, naming the setting', () => {
    expect(denial(pod({}), http)).toEqual([
      { code: 'WEBHOOK_INSECURE_ENDPOINT', subject: 'FETCHER_AWS_ENDPOINT_URL_STS', message: expect.stringContaining('is not https://') },
    ]);
  });
  it('injects with the emulator escape on', () => {
    expect(reviewPod(pod({}), { ...http, allowPlainHttpEndpoints: true }).outcome).toBe('injected');
  });
});

describe('FIPS endpoints the regions have', () => {
  const fips = { ...CONFIG, fetcherNetworkEnv: [{ name: 'AWS_USE_FIPS_ENDPOINT' as const, value: 'true' }] };

  it('injects a US secret with a US failover region', () => {
    expect(reviewPod(pod({ [`${PREFIX}failover-region`]: 'us-west-2' }), fips).outcome).toBe('injected');
  });

  it('refuses a failover region without FIPS endpoints, naming the annotation and the reason', () => {
    expect(denial(pod({ [`${PREFIX}failover-region`]: 'eu-west-1' }), fips)).toEqual([
      {
        code: 'WEBHOOK_UNSUPPORTED_POD',
        subject: `${PREFIX}failover-region`,
        message: expect.stringMatching(/also read in the failover region: Secrets Manager has no FIPS endpoint in eu-west-1 \(only in us-east-1, .*\), and the webhook has FETCHER_AWS_USE_FIPS_ENDPOINT=true$/),
      },
    ]);
  });

  it('refuses STS in a region with FIPS Secrets Manager but no FIPS STS (IRSA\'s token exchange)', () => {
    const p = pod({ [`${PREFIX}secret-arn`]: ARN('ca-central-1'), [`${PREFIX}region`]: 'ca-central-1' });
    expect(denial(p, fips)).toEqual([
      { code: 'WEBHOOK_UNSUPPORTED_POD', subject: `${PREFIX}region`, message: expect.stringContaining('STS has no FIPS endpoint in ca-central-1') },
    ]);
  });

  it('lets a pod that visibly uses Pod Identity without role chaining read in such a region (no STS call)', () => {
    const p = pod(
      { [`${PREFIX}secret-arn`]: ARN('ca-central-1'), [`${PREFIX}region`]: 'ca-central-1' },
      { env: [{ name: 'AWS_CONTAINER_CREDENTIALS_FULL_URI', value: 'http://169.254.170.23/v1/credentials' }] },
    );
    expect(reviewPod(p, fips).outcome).toBe('injected');
  });

  it('refuses an SSM parameter in a region without FIPS SSM, once per region', () => {
    const p = pod({ [`${PREFIX}secrets`]: `- ref: ${SSM('eu-central-1')}\n  file: a\n- ref: ${SSM('eu-central-1')}\n  file: b`, [`${PREFIX}secret-arn`]: ARN('us-east-1') });
    expect(denial(p, fips).map((x) => x.message)).toEqual([expect.stringContaining('SSM Parameter Store has no FIPS endpoint in eu-central-1')]);
  });

  it('checks nothing without FIPS', () => {
    expect(reviewPod(pod({ [`${PREFIX}failover-region`]: 'eu-west-1' }), CONFIG).outcome).toBe('injected');
  });
});
