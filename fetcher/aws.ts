// AwsApi with the AWS SDK v3: one identity for the whole run, the region explicit on every
// client. The credentials come from the source identity.ts chose (IRSA's web identity token, EKS
// Pod Identity's container credentials, or, opted in, the SDK's default chain); each provider is
// imported only when that source is used, so a bundle can leave the others unloaded. With a role
// ARN they are chained into that role through STS AssumeRole. The SDK itself honours
// AWS_ENDPOINT_URL and the per-service variants (emulator, VPC endpoints).

import { BatchGetSecretValueCommand, GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { GetParametersByPathCommand, GetParametersCommand, SSMClient } from '@aws-sdk/client-ssm';
import { AssumeRoleCommand, GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { CredentialError, errorFacts, type AwsApi } from './fetch.js';
import type { CredentialSource } from './identity.js';
import type { Network } from './network.js';
import { Transform } from 'node:stream';
import { AnswerMeter } from './budget.js';
import { FleetRetryStrategy, inCallScope, ThrottleLog, type RetryPolicy } from './retry.js';

interface AwsCredentialIdentity {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  expiration?: Date;
}
type AwsCredentialIdentityProvider = () => Promise<AwsCredentialIdentity>;

export interface AwsOptions {
  /** Counts every answer's bytes as it arrives (budget.ts); a new meter with no memory limit when absent. */
  meter?: AnswerMeter;
  /** Where the pod's identity comes from (identity.ts chooseCredentials). */
  source: CredentialSource;
  /** Chain into this role with STS AssumeRole. */
  roleArn?: string;
  /** RoleSessionName of IRSA's AssumeRoleWithWebIdentity and of AssumeRole (see sessionName). */
  sessionName: string;
  /** Region of the STS calls (AssumeRole, GetCallerIdentity, web identity). */
  stsRegion: string;
  /** Per-attempt timeout of one call. */
  callTimeoutMs: number;
  /** Attempts per call for timeouts and 5xx, the first included. */
  maxAttempts: number;
  /** How long a throttled call keeps being retried (retry.ts); default: 4 × callTimeoutMs. */
  throttleBudgetMs?: number;
  /** Agent options of every AWS client (the proxy; see network.ts). */
  agents?: Network['agents'];
}

/** AssumeRole's minimum; the fetcher is done long before. */
export const ASSUME_ROLE_SECONDS = 900;

/**
 * A RoleSessionName from the pod: `namespace.name`, reduced to STS's alphabet ([\w+=,.@-]) and
 * its 64-character limit, so CloudTrail shows which pod read which secret.
 */
export function sessionName(namespace: string | undefined, name: string | undefined): string {
  const raw = [namespace, name].filter((s) => s !== undefined && s !== '').join('.');
  const clean = raw.replace(/[^\w+=,.@-]/g, '-').slice(0, 64);
  return clean.length >= 2 ? clean : 'aws-secret-injector';
}

const JSON_PARSE_ERROR = /JSON Parse error|in JSON at position|is not valid JSON|Unexpected (token|end of JSON)|Unterminated string in JSON|JSON\.parse/;

/** Credentials are resolved again this long before they expire (the refresh sidecar outlives them). */
export const CREDENTIALS_REFRESH_MS = 5 * 60_000;

type Forgettable = AwsCredentialIdentityProvider & { forget: () => void };

function tagged(stage: 'credentials' | 'assume-role', provider: AwsCredentialIdentityProvider): Forgettable {
  let pending: Promise<AwsCredentialIdentity> | undefined;
  let expiresAt = Number.POSITIVE_INFINITY;
  const resolve = () => {
    // One resolution while it is good: every client shares it, so IRSA exchanges its token once
    // per credential lifetime. A failure is not kept: the refresh sidecar's next pass asks again.
    if (pending !== undefined && Date.now() >= expiresAt - CREDENTIALS_REFRESH_MS) pending = undefined;
    pending ??= provider().then(
      (c) => {
        expiresAt = c.expiration?.getTime() ?? Number.POSITIVE_INFINITY;
        return c;
      },
      (e: unknown) => {
        pending = undefined;
        const f = errorFacts(e);
        let message = typeof (e as Error)?.message === 'string' ? (e as Error).message.slice(0, 300) : f.code;
        // A JSON parser's message quotes the body it choked on: here, a credentials answer.
        if (JSON_PARSE_ERROR.test(message)) message = 'the credentials source answered with a body that is not valid JSON';
        throw new CredentialError(stage, f.code, message);
      },
    );
    return pending;
  };
  // memoized: the SDK takes this cache as its own instead of keeping the credentials in one of its
  // own, which would go on signing with them after `forget` until their stated expiry.
  return Object.assign(resolve, { forget: () => void (pending = undefined), memoized: true });
}

interface ProviderClientConfig {
  region: string;
  maxAttempts: number;
  retryStrategy: FleetRetryStrategy;
  requestHandler: { requestTimeout: number; connectionTimeout: number; throwOnRequestTimeout: boolean } & Network['agents'];
}

/**
 * A lazily imported module's exports. Code splitting in esbuild hands a CommonJS module (the CLI
 * bundle takes the SDK's CommonJS build) over as `default` only; Node and the fetcher bundle,
 * built from the SDK's ES modules, give the named exports.
 */
function exportsOf<T extends object>(mod: T, name: keyof T): T {
  return typeof mod[name] === 'function' ? mod : ((mod as { default?: T }).default ?? mod);
}

/**
 * The provider of one source, its module imported on first use. A web identity session is named
 * after the pod like the chained one, so CloudTrail names the pod (the SDK's default is
 * aws-sdk-js-session-<time>).
 */
function sourceProvider(source: CredentialSource, roleSessionName: string, clientConfig: ProviderClientConfig): AwsCredentialIdentityProvider {
  switch (source.kind) {
    case 'web-identity':
      return async () => {
        const { fromTokenFile } = exportsOf(await import('@aws-sdk/credential-provider-web-identity'), 'fromTokenFile');
        return fromTokenFile({ webIdentityTokenFile: source.tokenFile, roleArn: source.roleArn, roleSessionName, clientConfig })();
      };
    case 'pod-identity':
      return async () => {
        const { fromHttp } = exportsOf(await import('@aws-sdk/credential-provider-http'), 'fromHttp');
        return fromHttp({
          awsContainerCredentialsFullUri: source.fullUri,
          ...(source.tokenFile !== undefined && { awsContainerAuthorizationTokenFile: source.tokenFile }),
        })();
      };
    case 'node':
      return async () => {
        const { defaultProvider } = exportsOf(await import('@aws-sdk/credential-provider-node'), 'defaultProvider');
        return defaultProvider({ roleSessionName, clientConfig })();
      };
  }
}

export function createAwsApi(opts: AwsOptions): AwsApi {
  const throttled = new ThrottleLog();
  const policy: RetryPolicy = { maxAttempts: opts.maxAttempts, throttleBudgetMs: opts.throttleBudgetMs ?? 4 * opts.callTimeoutMs };
  const retry = (api: string, region: string, scoped = false, p = policy) => new FleetRetryStrategy({ api, region, scoped }, p, throttled);
  const common = {
    maxAttempts: opts.maxAttempts,
    // Without throwOnRequestTimeout the SDK only logs a warning when requestTimeout passes, and
    // the call goes on waiting: the per-call timeout would exist in name only.
    requestHandler: {
      requestTimeout: opts.callTimeoutMs,
      connectionTimeout: Math.min(opts.callTimeoutMs, 5_000),
      throwOnRequestTimeout: true,
      ...opts.agents,
    },
  } as const;
  // The chain's own STS client (IRSA's AssumeRoleWithWebIdentity) gets the same per-call timeout
  // and retries: without them a silent STS endpoint holds the exchange open forever.
  const base = tagged(
    'credentials',
    sourceProvider(opts.source, opts.sessionName, {
      region: opts.stsRegion,
      maxAttempts: common.maxAttempts,
      retryStrategy: retry('AssumeRoleWithWebIdentity', opts.stsRegion),
      requestHandler: common.requestHandler,
    }),
  );
  let credentials: Forgettable = base;
  if (opts.roleArn !== undefined) {
    const sts = new STSClient({ ...common, retryStrategy: retry('AssumeRole', opts.stsRegion), region: opts.stsRegion, credentials: base });
    const roleArn = opts.roleArn;
    credentials = tagged('assume-role', async () => {
      const out = await sts.send(
        new AssumeRoleCommand({ RoleArn: roleArn, RoleSessionName: opts.sessionName, DurationSeconds: ASSUME_ROLE_SECONDS }),
      );
      const c = out.Credentials;
      if (!c?.AccessKeyId || !c.SecretAccessKey) throw new Error('AssumeRole returned no credentials');
      return {
        accessKeyId: c.AccessKeyId,
        secretAccessKey: c.SecretAccessKey,
        ...(c.SessionToken !== undefined && { sessionToken: c.SessionToken }),
        ...(c.Expiration !== undefined && { expiration: c.Expiration }),
      };
    });
  }

  const secrets = new Map<string, SecretsManagerClient>();
  const ssm = new Map<string, SSMClient>();
  const sts = new Map<string, STSClient>();
  const client = <C>(cache: Map<string, C>, region: string, make: () => C): C => {
    let c = cache.get(region);
    if (!c) cache.set(region, (c = make()));
    return c;
  };
  const meter = opts.meter ?? new AnswerMeter(undefined);
  const sm = (region: string) =>
    client(secrets, region, () => metered(new SecretsManagerClient({ ...common, retryStrategy: retry('GetSecretValue', region, true), region, credentials }), meter));
  const ssmIn = (region: string) =>
    client(ssm, region, () => metered(new SSMClient({ ...common, retryStrategy: retry('GetParameters', region, true), region, credentials }), meter));

  return {
    getSecretValue: (region, input, abortSignal) =>
      inCallScope({ api: 'GetSecretValue' }, () => sm(region).send(new GetSecretValueCommand(input), { abortSignal })),
    batchGetSecretValue: (region, input, abortSignal, how) =>
      inCallScope({ api: 'BatchGetSecretValue', failFast: how?.failFast === true }, () =>
        sm(region).send(new BatchGetSecretValueCommand(input), { abortSignal }),
      ),
    getParameters: (region, input, abortSignal) =>
      inCallScope({ api: 'GetParameters' }, () => ssmIn(region).send(new GetParametersCommand(input), { abortSignal })),
    getParametersByPath: (region, input, abortSignal) =>
      inCallScope({ api: 'GetParametersByPath' }, () => ssmIn(region).send(new GetParametersByPathCommand(input), { abortSignal })),
    forgetCredentials: () => {
      // Both: a chained role's session may outlive the source's, never the other way round.
      base.forget();
      credentials.forget();
    },
    callerIdentity: async (region, abortSignal) => {
      const c = client(sts, region, () => new STSClient({ ...common, maxAttempts: 2, retryStrategy: retry('GetCallerIdentity', region, false, { ...policy, maxAttempts: 2 }), region, credentials }));
      const out = await c.send(new GetCallerIdentityCommand({}), { abortSignal });
      if (out.Arn === undefined) throw new Error('GetCallerIdentity returned no ARN');
      return out.Arn;
    },
    throttled: () => throttled.list(),
  };
}

interface RawResponse {
  headers?: Record<string, string | undefined>;
  body?: unknown;
}

/**
 * Every answer's body goes through `meter` before the SDK reads it: a declared length past the
 * bound is refused unread, and a body growing past it is cut off (the socket closed), so an
 * endpoint that is not AWS cannot make the fetcher hold what its memory limit cannot.
 */
function metered<C extends { middlewareStack: { add: (...a: never[]) => void } }>(client: C, meter: AnswerMeter): C {
  const add = client.middlewareStack.add as unknown as (mw: unknown, opts: object) => void;
  add.call(
    client.middlewareStack,
    (next: (args: unknown) => Promise<{ response: RawResponse }>) => async (args: unknown) => {
      const out = await next(args);
      const res = out.response;
      const length = res.headers?.['content-length'];
      const declared = length === undefined || length === '' ? undefined : Number(length);
      const body = res.body as (NodeJS.ReadableStream & { destroy?: () => void }) | undefined;
      try {
        meter.begin(Number.isFinite(declared) ? declared : undefined);
      } catch (e) {
        body?.destroy?.();
        throw e;
      }
      if (body !== undefined && typeof body.pipe === 'function') {
        let sofar = 0;
        const counted = new Transform({
          transform(chunk: Buffer, _enc, done) {
            sofar += chunk.length;
            try {
              meter.add(chunk.length, sofar);
            } catch (e) {
              body.destroy?.();
              return done(e as Error);
            }
            done(null, chunk);
          },
        });
        body.on('error', (e: Error) => counted.destroy(e));
        res.body = body.pipe(counted);
      }
      return out;
    },
    // Inside the deserializer (which runs at normal priority): the raw answer, before it is read.
    { step: 'deserialize', priority: 'low', name: 'answerMeter' },
  );
  return client;
}
