// The AWS request quotas the fetcher's calls count against: per account and Region, shared by
// every pod (and everything else) of the account. The failure report names the one that throttled;
// bench/fleet.mjs's stand-in enforces these numbers; docs/scale.md's table is checked against them.

export interface Quota {
  /** Requests per second per account and Region. */
  perSecond: number;
  /** What else counts against the same quota. */
  sharedWith?: string;
  /** Whether AWS raises it on request (Service Quotas, a support case or a paid setting). */
  adjustable: boolean;
  /** With SSM Parameter Store's paid higher-throughput setting. */
  higher?: number;
  /** AWS's page that states it. */
  source: string;
}

const SECRETS_MANAGER = 'https://docs.aws.amazon.com/secretsmanager/latest/userguide/reference_limits.html';
const SSM = 'https://docs.aws.amazon.com/general/latest/gr/ssm.html';
const STS = 'https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html';

/** By API (operation name). */
export const QUOTAS = {
  GetSecretValue: { perSecond: 10_000, adjustable: false, source: SECRETS_MANAGER },
  BatchGetSecretValue: { perSecond: 100, adjustable: false, source: SECRETS_MANAGER },
  GetParameters: { perSecond: 40, higher: 3_000, sharedWith: 'GetParameter and GetParametersByPath', adjustable: true, source: SSM },
  GetParametersByPath: { perSecond: 40, higher: 100, sharedWith: 'GetParameter and GetParameters', adjustable: true, source: SSM },
  AssumeRoleWithWebIdentity: { perSecond: 600, adjustable: true, source: STS },
  AssumeRole: { perSecond: 600, sharedWith: 'GetCallerIdentity and the other STS calls made with credentials', adjustable: true, source: STS },
  GetCallerIdentity: { perSecond: 600, sharedWith: 'AssumeRole and the other STS calls made with credentials', adjustable: true, source: STS },
} as const satisfies Record<string, Quota>;

export type QuotaApi = keyof typeof QUOTAS;

/** "10,000 requests per second per account and Region (shared with …; adjustable), https://…" */
export function describeQuota(api: string): string | undefined {
  const q = (QUOTAS as Record<string, Quota>)[api];
  if (q === undefined) return undefined;
  const shared = q.sharedWith !== undefined ? `, shared with ${q.sharedWith}` : '';
  const higher = q.higher !== undefined ? `; ${q.higher.toLocaleString('en-US')} with the paid higher-throughput setting` : '';
  return `${q.perSecond.toLocaleString('en-US')} requests per second per account and Region${shared}${higher} (${q.adjustable ? 'adjustable' : 'not adjustable'}; ${q.source})`;
}

/** Secrets Manager bills $0.05 per 10,000 API calls (https://aws.amazon.com/secrets-manager/pricing/). */
export const DOLLARS_PER_CALL = 0.05 / 10_000;
/** AWS bills a month as 730 hours. */
export const SECONDS_PER_MONTH = 730 * 3600;
/** Service limits: BatchGetSecretValue takes up to 20 SecretIds, GetParameters up to 10 Names. */
export const SECRETS_PER_BATCH = 20;
export const PARAMETERS_PER_CALL = 10;

/** Secrets Manager calls a month of refresh sidecars make: one batch per 20 secrets per pod per interval. */
export function refreshCallsPerMonth(pods: number, secrets: number, intervalSeconds: number, batched = true): number {
  return pods * (batched ? Math.ceil(secrets / SECRETS_PER_BATCH) : secrets) * (SECONDS_PER_MONTH / intervalSeconds);
}
