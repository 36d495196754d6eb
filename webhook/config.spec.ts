import { mkdtempSync, writeFileSync } from 'node:fs';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { flagName, loadConfig, OPTIONS, quantityValue, renderConfigTable, type WebhookConfig } from './config.js';
import { DEFAULT_MUTATION_CONFIG } from './types.js';

const config = (argv: string[], env: NodeJS.ProcessEnv = {}): WebhookConfig => {
  const r = loadConfig(argv, env);
  if (!('config' in r)) throw new Error(JSON.stringify(r));
  return r.config;
};
const errors = (argv: string[], env: NodeJS.ProcessEnv = {}): string[] => {
  const r = loadConfig(argv, env);
  if (!('errors' in r)) throw new Error(`expected errors, got ${JSON.stringify(r)}`);
  return r.errors;
};

const dir = mkdtempSync(join(tmpdir(), 'config-spec-'));
const certFile = join(dir, 'tls.crt');
const keyFile = join(dir, 'tls.key');
writeFileSync(certFile, 'c');
writeFileSync(keyFile, 'k');

describe('loadConfig', () => {
  it('has working defaults: port 8443, every interface, development certificate, the default mutation config', () => {
    expect(config([])).toEqual({
      host: '::',
      port: 8443,
      logLevel: 'info',
      shutdownDelaySeconds: 0,
      shutdownTimeoutSeconds: 25,
      mutation: DEFAULT_MUTATION_CONFIG,
      writeThrough: { deletionPolicy: 'Retain', recoveryDays: 30, deadlineSeconds: 8 },
    });
  });

  it('reads every option from its environment variable', () => {
    const c = config([], {
      HOST: '127.0.0.1',
      PORT: '9443',
      TLS_CERT_FILE: certFile,
      TLS_KEY_FILE: keyFile,
      LOG_LEVEL: 'debug',
      FETCHER_IMAGE: '123456789012.dkr.ecr.us-east-1.amazonaws.com/fetcher@sha256:abc',
      FETCHER_IMAGE_PULL_POLICY: 'Always',
      FETCHER_CPU_REQUEST: '50m',
      FETCHER_MEMORY_REQUEST: '16Mi',
      FETCHER_CPU_LIMIT: '',
      FETCHER_MEMORY_LIMIT: '128Mi',
      FETCHER_UID: '1000',
      DEFAULT_MOUNT_PATH: '/var/run/secrets/app/',
      VOLUME_SIZE_LIMIT: '1Mi',
      FETCH_DEADLINE_SECONDS: '90',
      REFRESHER_CPU_REQUEST: '1m',
      REFRESHER_MEMORY_REQUEST: '40Mi',
      REFRESHER_CPU_LIMIT: '50m',
      REFRESHER_MEMORY_LIMIT: '',
      NATIVE_SIDECARS: 'false',
      CPU_LIMIT_POLICY: 'fixed',
      FETCHER_NODE_CREDENTIALS: 'allow',
      SHUTDOWN_DELAY_SECONDS: '5',
      SHUTDOWN_TIMEOUT_SECONDS: '10',
      WRITE_THROUGH_CLUSTER: 'prod-eu1',
      WRITE_THROUGH_PREFIX: 'teams/k8s',
      WRITE_THROUGH_REGION: 'eu-west-1',
      WRITE_THROUGH_KMS_KEY_ID: 'alias/k8s-secrets',
      WRITE_THROUGH_DELETION_POLICY: 'Delete',
      WRITE_THROUGH_RECOVERY_DAYS: '7',
      WRITE_THROUGH_DEADLINE_SECONDS: '5',
      WRITE_THROUGH_NAMESPACE: 'aws-secret-injector',
    });
    expect(c).toEqual({
      host: '127.0.0.1',
      port: 9443,
      tlsCertFile: certFile,
      tlsKeyFile: keyFile,
      logLevel: 'debug',
      shutdownDelaySeconds: 5,
      shutdownTimeoutSeconds: 10,
      mutation: {
        fetcherImage: '123456789012.dkr.ecr.us-east-1.amazonaws.com/fetcher@sha256:abc',
        fetcherImagePullPolicy: 'Always',
        fetcherResources: { requests: { cpu: '50m', memory: '16Mi' }, limits: { memory: '128Mi' } },
        fetcherUid: 1000,
        defaultMountPath: '/var/run/secrets/app',
        volumeSizeLimit: '1Mi',
        fetchTimeouts: { deadlineSeconds: 90 },
        nativeSidecars: false,
        refresherResources: { requests: { cpu: '1m', memory: '40Mi' }, limits: { cpu: '50m' } },
        nodeCredentials: 'allow',
        cpuLimitPolicy: 'fixed',
        store: { cluster: 'prod-eu1', prefix: 'teams/k8s', region: 'eu-west-1' },
      },
      writeThrough: { kmsKeyId: 'alias/k8s-secrets', deletionPolicy: 'Delete', recoveryDays: 7, deadlineSeconds: 5, namespace: 'aws-secret-injector' },
    });
  });

  it('takes a flag over the environment, in both --flag value and --flag=value forms', () => {
    const c = config(['--port', '10443', '--log-level=warn'], { PORT: '9443', LOG_LEVEL: 'debug' });
    expect(c.port).toBe(10443);
    expect(c.logLevel).toBe('warn');
  });

  it('has a flag for every option', () => {
    for (const o of Object.values(OPTIONS)) expect(loadConfig([flagName(o.env), 'x'], {})).not.toMatchObject({ errors: [expect.stringMatching(/unknown option/)] });
  });

  it('lists every problem at once, naming where each value came from', () => {
    const e = errors(['--port', '70000'], {
      LOG_LEVEL: 'loud',
      FETCHER_IMAGE_PULL_POLICY: 'Sometimes',
      FETCHER_UID: '0',
      DEFAULT_MOUNT_PATH: 'relative/path',
      VOLUME_SIZE_LIMIT: '16 MB',
      FETCHER_MEMORY_REQUEST: '128Mi',
      FETCH_DEADLINE_SECONDS: '-1',
      FETCHER_NODE_CREDENTIALS: 'true',
      TLS_CERT_FILE: join(dir, 'missing.crt'),
    });
    expect(e).toEqual([
      '--port="70000": must be a whole number from 0 to 65535',
      expect.stringMatching(/^TLS_CERT_FILE=".*missing.crt": .*missing.crt does not exist$/),
      'LOG_LEVEL="loud": must be one of fatal, error, warn, info, debug, trace, silent',
      'FETCHER_IMAGE_PULL_POLICY="Sometimes": must be one of Always, IfNotPresent, Never',
      'FETCHER_UID="0": must be a whole number from 1 to 2147483647',
      'DEFAULT_MOUNT_PATH="relative/path": must be an absolute path other than /',
      'VOLUME_SIZE_LIMIT="16 MB": must be a positive Kubernetes quantity such as 100m, 64Mi or 1 (empty: no limit)',
      'FETCHER_NODE_CREDENTIALS="true": must be one of deny, allow',
      'FETCH_DEADLINE_SECONDS="-1": must be a whole number from 1 to 3600',
      'TLS_CERT_FILE and TLS_KEY_FILE must be set together (or both left unset for a development certificate)',
      'FETCHER_MEMORY_REQUEST (128Mi) is above FETCHER_MEMORY_LIMIT (80Mi); Kubernetes would reject every injected pod',
    ]);
  });

  it.each([
    ['FETCHER_IMAGE', 'https://example.com/image'],
    ['FETCHER_IMAGE', 'has space'],
    ['FETCHER_CPU_REQUEST', '0'],
    ['REFRESHER_MEMORY_REQUEST', '0'],
    ['NATIVE_SIDECARS', 'yes'],
    ['FETCHER_CPU_REQUEST', ''],
    ['FETCHER_CPU_LIMIT', '1x'],
    ['DEFAULT_MOUNT_PATH', '/'],
    ['DEFAULT_MOUNT_PATH', '/a/../b'],
    ['DEFAULT_MOUNT_PATH', '/a:b'],
    ['DEFAULT_MOUNT_PATH', '/dev/'],
    ['DEFAULT_MOUNT_PATH', '/sys/fs'],
    ['PORT', '8443.5'],
    ['PORT', 'https'],
    ['HOST', 'a b'],
    ['SHUTDOWN_TIMEOUT_SECONDS', '0'],
    ['SHUTDOWN_DELAY_SECONDS', '301'],
    ['TLS_KEY_FILE', dir],
  ])('rejects %s=%j', (env, value) => {
    expect(errors([], { [env]: value }).some((e) => e.startsWith(`${env}=`))).toBe(true);
  });

  it("gives the fetcher only the network variables set, under the fetcher's names, and its CA bundle", () => {
    expect(config([]).mutation.fetcherNetworkEnv).toBeUndefined();
    expect(config([]).mutation.fetcherCaBundle).toBeUndefined();
    const m = config([], {
      FETCHER_HTTPS_PROXY: 'http://proxy.internal:3128',
      FETCHER_HTTP_PROXY: 'http://proxy.internal:3128/',
      FETCHER_NO_PROXY: ' .vpce.amazonaws.com, 10.0.0.1 ,[fd00::1]:443,*',
      FETCHER_AWS_USE_FIPS_ENDPOINT: 'true',
      FETCHER_AWS_USE_DUALSTACK_ENDPOINT: 'false',
      FETCHER_CA_BUNDLE_CONFIGMAP: 'corp-trust',
      FETCHER_CA_BUNDLE_KEY: 'trust-bundle.pem',
    }).mutation;
    expect(m.fetcherNetworkEnv).toEqual([
      { name: 'HTTPS_PROXY', value: 'http://proxy.internal:3128' },
      { name: 'HTTP_PROXY', value: 'http://proxy.internal:3128/' },
      { name: 'NO_PROXY', value: '.vpce.amazonaws.com,10.0.0.1,[fd00::1]:443,*' },
      { name: 'AWS_USE_FIPS_ENDPOINT', value: 'true' },
    ]);
    expect(m.fetcherCaBundle).toEqual({ configMap: 'corp-trust', key: 'trust-bundle.pem' });
    const e = config([], {
      FETCHER_AWS_ENDPOINT_URL_SECRETS_MANAGER: 'https://moto.test.svc:5000',
      FETCHER_AWS_ENDPOINT_URL_SSM: 'https://ssm.example/',
      FETCHER_AWS_ENDPOINT_URL_STS: 'https://sts.example/v1',
    }).mutation;
    expect(e.fetcherNetworkEnv).toEqual([
      { name: 'AWS_ENDPOINT_URL_SECRETS_MANAGER', value: 'https://moto.test.svc:5000' },
      { name: 'AWS_ENDPOINT_URL_SSM', value: 'https://ssm.example/' },
      { name: 'AWS_ENDPOINT_URL_STS', value: 'https://sts.example/v1' },
    ]);
  });

  it.each([
    ['FETCHER_HTTPS_PROXY', 'proxy.internal:3128', 'must be an http:// or https:// URL'],
    ['FETCHER_HTTPS_PROXY', 'socks5://proxy:1080', 'must be an http:// or https:// URL'],
    ['FETCHER_HTTPS_PROXY', 'http://user:pass@proxy:3128', 'copied in clear into every injected pod'],
    ['FETCHER_HTTP_PROXY', 'http://proxy:3128/path', 'scheme, host and port only'],
    ['FETCHER_NO_PROXY', 'a b', 'not one: "a b"'],
    ['FETCHER_NO_PROXY', ',', 'comma-separated'],
    ['FETCHER_NO_PROXY', '10.0.0.0/8', 'no CIDR blocks'],
    ['FETCHER_AWS_USE_FIPS_ENDPOINT', 'yes', 'must be true or false'],
    ['FETCHER_AWS_ENDPOINT_URL_SSM', 'ssm.example', 'must be a URL'],
    ['FETCHER_AWS_ENDPOINT_URL_STS', 'https://sts.example/?x=1', 'scheme, host and port only'],
    ['FETCHER_CA_BUNDLE_CONFIGMAP', 'Corp_Trust', 'must be a ConfigMap name'],
    ['FETCHER_CA_BUNDLE_KEY', 'a/b', 'must be a ConfigMap key'],
  ])('rejects %s=%j: %s', (env, value, why) => {
    expect(errors([], { [env]: value })).toEqual([expect.stringContaining(`${env}=${JSON.stringify(value)}: `)]);
    expect(errors([], { [env]: value })[0]).toContain(why);
  });

  it.each(['FETCHER_AWS_ENDPOINT_URL_SECRETS_MANAGER', 'FETCHER_AWS_ENDPOINT_URL_SSM', 'FETCHER_AWS_ENDPOINT_URL_STS'])(
    'refuses a plain http:// %s at start, naming the setting and the escape',
    (env) => {
      expect(errors([], { [env]: 'http://moto.test.svc:5000' })).toEqual([
        `${env}="http://moto.test.svc:5000" must be https://: IRSA's token, the session credentials and the secret values would cross the network in clear (FETCHER_ALLOW_PLAIN_HTTP_ENDPOINTS=true allows http:// for a local emulator only)`,
      ]);
      expect(errors([], { [env]: 'ftp://moto.test.svc' })[0]).toContain('must be an https:// URL');
    },
  );

  it('takes plain http:// endpoints with FETCHER_ALLOW_PLAIN_HTTP_ENDPOINTS=true (a local emulator), and says so to the review', () => {
    const m = config(['--fetcher-allow-plain-http-endpoints', 'true'], { FETCHER_AWS_ENDPOINT_URL_STS: 'http://127.0.0.1:5000' }).mutation;
    expect(m.fetcherNetworkEnv).toEqual([{ name: 'AWS_ENDPOINT_URL_STS', value: 'http://127.0.0.1:5000' }]);
    expect(m.allowPlainHttpEndpoints).toBe(true);
    expect(config([], {}).mutation.allowPlainHttpEndpoints).toBeUndefined();
  });

  it('refuses the FIPS or dual-stack switch with an endpoint URL (the SDK would refuse every call)', () => {
    expect(
      errors([], { FETCHER_AWS_USE_FIPS_ENDPOINT: 'true', FETCHER_AWS_USE_DUALSTACK_ENDPOINT: 'true', FETCHER_AWS_ENDPOINT_URL_STS: 'https://sts.example' }),
    ).toEqual([
      'FETCHER_AWS_USE_FIPS_ENDPOINT=true cannot be combined with a FETCHER_AWS_ENDPOINT_URL_* setting: the endpoint URL already names the host',
      'FETCHER_AWS_USE_DUALSTACK_ENDPOINT=true cannot be combined with a FETCHER_AWS_ENDPOINT_URL_* setting: the endpoint URL already names the host',
    ]);
  });

  it('rejects unknown flags and flags without a value', () => {
    expect(errors(['--prot', '1'])).toEqual([expect.stringMatching(/unknown option '--prot'/)]);
    expect(errors(['--port'])).toEqual([expect.stringMatching(/--port <value>' argument missing/)]);
  });

  it('prints help naming every flag and environment variable', () => {
    const r = loadConfig(['--help'], {});
    expect(r).toHaveProperty('help');
    const help = (r as { help: string }).help.replace(/\s+/g, ' ');
    for (const o of Object.values(OPTIONS)) {
      expect(help).toContain(flagName(o.env));
      expect(help).toContain(`env: ${o.env}`);
    }
  });

  it('strips brackets from an IPv6 host', () => {
    expect(config(['--host', '[::1]']).host).toBe('::1');
  });
});

describe('quantityValue', () => {
  it.each([
    ['100m', 0.1],
    ['1', 1],
    ['1.5', 1.5],
    ['64Mi', 64 * 2 ** 20],
    ['1G', 1e9],
    ['1e3', 1000],
    ['.5', 0.5],
  ])('%s = %d', (q, v) => expect(quantityValue(q)).toBeCloseTo(v));
  it.each(['', 'm', '1mi', '1 Mi', '-1', '1.2.3'])('%j is not a quantity', (q) => expect(quantityValue(q)).toBeUndefined());
});

describe('docs/configuration.md', () => {
  it('carries the configuration table exactly as config.ts renders it', () => {
    const readme = readFileSync(new URL('../docs/configuration.md', import.meta.url), 'utf8');
    const m = /<!-- config:begin -->\n([\s\S]*?)\n<!-- config:end -->/.exec(readme);
    expect(m, 'docs/configuration.md has a <!-- config:begin --> ... <!-- config:end --> section').not.toBeNull();
    expect(m![1]).toBe(renderConfigTable());
  });
});
