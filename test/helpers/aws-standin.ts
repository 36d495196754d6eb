// A local stand-in for the AWS APIs the fetcher calls, for what the emulator cannot do: enforce
// AWS's per-account, per-Region request quotas. Each API's quota (fetcher/quotas.ts, or the
// numbers given) is a token bucket per account and Region that holds one second of its rate;
// a call finding it empty gets the answer AWS gives a throttled call on that API's wire protocol:
//   Secrets Manager, SSM (JSON 1.1)  HTTP 400, x-amzn-ErrorType and {"__type":"ThrottlingException","message":"Rate exceeded"}
//   STS (query, XML)                 HTTP 400, <ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>…
// Every answer waits a latency drawn from a log-normal distribution first. Secrets and parameters
// all exist; a value is derived from its name. Used by the fleet bench (bench/fleet.mjs) and the
// integration tests of throttling; nothing here is a model of the fetcher, which runs unchanged.

import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { QUOTAS } from '../../fetcher/quotas.js';

/** The bucket an API draws from: APIs that share a quota share one. */
const BUCKET: Record<string, string> = {
  GetSecretValue: 'GetSecretValue',
  BatchGetSecretValue: 'BatchGetSecretValue',
  GetParameters: 'GetParameters',
  GetParameter: 'GetParameters',
  GetParametersByPath: 'GetParametersByPath',
  AssumeRoleWithWebIdentity: 'AssumeRoleWithWebIdentity',
  AssumeRole: 'AssumeRole',
  GetCallerIdentity: 'AssumeRole',
};

export interface StandInOptions {
  /** Requests per second by API (bucket name); default: AWS's published quotas. */
  quotas?: Partial<Record<string, number>>;
  /** Median latency of an answer, by API; default 20 ms (STS web identity 40 ms). */
  latencyMs?: Partial<Record<string, number>>;
  /** Spread of the log-normal latency (sigma); 0 for a fixed latency. */
  latencySigma?: number;
  /** Throttle everything of this API (fault injection), regardless of the bucket. */
  alwaysThrottle?: string[];
  /** Value of a secret or parameter by name. */
  value?: (name: string) => string;
  random?: () => number;
}

export interface ApiStats {
  calls: number;
  throttled: number;
}

export interface StandIn {
  endpoint: string;
  /** Calls and throttled calls by API. */
  stats(): Record<string, ApiStats>;
  reset(): void;
  close(): Promise<void>;
}

class Bucket {
  private tokens: number;
  private at: number;
  constructor(
    private readonly rate: number,
    now: number,
  ) {
    this.tokens = rate;
    this.at = now;
  }
  take(now: number): boolean {
    this.tokens = Math.min(this.rate, this.tokens + ((now - this.at) / 1000) * this.rate);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

const ACCOUNT = '123456789012';
const STS_NS = 'https://sts.amazonaws.com/doc/2011-06-15/';

/** Access keys the stand-in issues carry the account: ASIA + 12 digits + 4 random characters. */
function accountOfKey(key: string | undefined): string {
  const m = /^ASIA(\d{12})/.exec(key ?? '');
  return m?.[1] ?? ACCOUNT;
}

export async function startAwsStandIn(opts: StandInOptions = {}): Promise<StandIn> {
  const random = opts.random ?? Math.random;
  const quotas: Record<string, number> = Object.fromEntries(Object.entries(QUOTAS).map(([api, q]) => [api, q.perSecond]));
  Object.assign(quotas, opts.quotas);
  const latency = { GetSecretValue: 20, BatchGetSecretValue: 30, GetParameters: 20, AssumeRoleWithWebIdentity: 40, AssumeRole: 30, GetCallerIdentity: 20, ...opts.latencyMs };
  const sigma = opts.latencySigma ?? 0.4;
  const valueOf = opts.value ?? ((name: string) => `value of ${name}`);
  const buckets = new Map<string, Bucket>();
  let stats: Record<string, ApiStats> = {};

  const allowed = (api: string, account: string, region: string): boolean => {
    if (opts.alwaysThrottle?.includes(api)) return false;
    const name = BUCKET[api] ?? api;
    const rate = quotas[name];
    if (rate === undefined) return true;
    const k = `${account}\u0000${region}\u0000${name}`;
    let b = buckets.get(k);
    if (!b) buckets.set(k, (b = new Bucket(rate, performance.now())));
    return b.take(performance.now());
  };
  // Log-normal around the median (Box-Muller).
  const delay = (api: string) => {
    const median = (latency as Record<string, number>)[api] ?? 20;
    const z = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
    return median * Math.exp(sigma * z);
  };

  const handle = (req: IncomingMessage, res: ServerResponse, body: string) => {
    const auth = String(req.headers.authorization ?? '');
    const scope = /Credential=([^/,\s]+)\/\d{8}\/([a-z0-9-]+)\/([a-z]+)\//.exec(auth);
    const region = scope?.[2] ?? 'global';
    const target = req.headers['x-amz-target'];
    let api: string;
    let form: URLSearchParams | undefined;
    if (typeof target === 'string') api = target.slice(target.indexOf('.') + 1);
    else {
      form = new URLSearchParams(body);
      api = form.get('Action') ?? 'Unknown';
    }
    // AssumeRoleWithWebIdentity is unsigned: it counts against the role's account.
    const account = form?.get('RoleArn')?.split(':')[4] ?? accountOfKey(scope?.[1]);
    const s = (stats[api] ??= { calls: 0, throttled: 0 });
    s.calls++;
    const requestId = randomUUID();
    const ok = allowed(api, account, region);
    if (!ok) s.throttled++;
    setTimeout(() => (ok ? answer(res, api, account, region, body, form, requestId) : throttle(res, api, requestId)), ok ? delay(api) : delay(api) / 4);
  };

  const json = (res: ServerResponse, status: number, requestId: string, value: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': requestId, ...headers });
    res.end(JSON.stringify(value));
  };
  const xml = (res: ServerResponse, status: number, requestId: string, text: string) => {
    res.writeHead(status, { 'content-type': 'text/xml', 'x-amzn-requestid': requestId });
    res.end(text);
  };

  const throttle = (res: ServerResponse, api: string, requestId: string) => {
    if (BUCKET[api]?.startsWith('Assume') || api === 'GetCallerIdentity') {
      xml(
        res,
        400,
        requestId,
        `<ErrorResponse xmlns="${STS_NS}"><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`,
      );
      return;
    }
    json(res, 400, requestId, { __type: 'ThrottlingException', message: 'Rate exceeded' }, {
      'x-amzn-errortype': 'ThrottlingException:http://internal.amazon.com/coral/com.amazon.coral.availability/',
    });
  };

  const secret = (id: string, region: string, account: string) => {
    const name = id.startsWith('arn:') ? id.slice(id.indexOf(':secret:') + 8).replace(/-[A-Za-z0-9]{6}$/, '') : id;
    const arn = `arn:aws:secretsmanager:${region}:${account}:secret:${name}-AbCdEf`;
    return { ARN: arn, Name: name, VersionId: '00000000-0000-4000-8000-000000000001', SecretString: valueOf(name), VersionStages: ['AWSCURRENT'], CreatedDate: 1.7e9 };
  };

  const credentials = (account: string) => {
    const key = `ASIA${account}${randomUUID().slice(0, 4).toUpperCase()}`;
    const expiration = new Date(Date.now() + 3600_000).toISOString();
    return `<Credentials><AccessKeyId>${key}</AccessKeyId><SecretAccessKey>standin</SecretAccessKey><SessionToken>standin</SessionToken><Expiration>${expiration}</Expiration></Credentials>`;
  };

  const answer = (res: ServerResponse, api: string, account: string, region: string, body: string, form: URLSearchParams | undefined, requestId: string) => {
    const meta = `<ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata>`;
    switch (api) {
      case 'GetSecretValue':
        return json(res, 200, requestId, secret((JSON.parse(body) as { SecretId: string }).SecretId, region, account));
      case 'BatchGetSecretValue': {
        const ids = (JSON.parse(body) as { SecretIdList: string[] }).SecretIdList;
        return json(res, 200, requestId, { SecretValues: ids.map((id) => secret(id, region, account)), Errors: [] });
      }
      case 'GetParameters': {
        const names = (JSON.parse(body) as { Names: string[] }).Names;
        const Parameters = names.map((n) => {
          const name = n.startsWith('arn:') ? n.slice(n.indexOf(':parameter') + 10) : n;
          const arn = `arn:aws:ssm:${region}:${account}:parameter${name.startsWith('/') ? '' : '/'}${name}`;
          return { Name: name, Type: 'SecureString', Value: valueOf(name), Version: 1, ARN: arn, DataType: 'text', LastModifiedDate: 1.7e9 };
        });
        return json(res, 200, requestId, { Parameters, InvalidParameters: [] });
      }
      case 'AssumeRoleWithWebIdentity':
      case 'AssumeRole': {
        const role = form?.get('RoleArn') ?? `arn:aws:iam::${account}:role/standin`;
        const roleName = role.split('/').pop();
        const session = form?.get('RoleSessionName') ?? 'session';
        return xml(
          res,
          200,
          requestId,
          `<${api}Response xmlns="${STS_NS}"><${api}Result>${credentials(role.split(':')[4] ?? account)}<AssumedRoleUser><Arn>arn:aws:sts::${account}:assumed-role/${roleName}/${session}</Arn><AssumedRoleId>AROASTANDIN:${session}</AssumedRoleId></AssumedRoleUser></${api}Result>${meta}</${api}Response>`,
        );
      }
      case 'GetCallerIdentity':
        return xml(
          res,
          200,
          requestId,
          `<GetCallerIdentityResponse xmlns="${STS_NS}"><GetCallerIdentityResult><Arn>arn:aws:sts::${account}:assumed-role/standin/pod</Arn><UserId>AROASTANDIN:pod</UserId><Account>${account}</Account></GetCallerIdentityResult>${meta}</GetCallerIdentityResponse>`,
        );
      default:
        return json(res, 400, requestId, { __type: 'UnknownOperationException', message: `the stand-in does not answer ${api}` });
    }
  };

  const server: Server = createServer({ keepAliveTimeout: 5_000 }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handle(req, res, Buffer.concat(chunks).toString('utf8')));
  });
  server.maxConnections = 100_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    stats: () => structuredClone(stats),
    reset: () => {
      stats = {};
      buckets.clear();
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
