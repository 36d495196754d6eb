// Which credentials the fetcher may use. Only the pod's own identity, as the webhook hands it over:
// IRSA's web identity token, else EKS Pod Identity's container credentials endpoint. Keys or a
// profile in the environment and the node's instance role (instance metadata) are used only when
// the webhook's FETCHER_NODE_CREDENTIALS=allow put NODE_CREDENTIALS_ENV=allow into the fetcher:
// otherwise a pod without an identity would read secrets as the node, which every pod on the node
// shares. Pure: the environment comes in as an argument; aws.ts loads the provider chosen here.

import { failure, type Failure } from './errors.js';
import { NODE_CREDENTIALS_ENV } from './spec.js';

export type CredentialSource =
  /** IRSA: AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE, exchanged with STS AssumeRoleWithWebIdentity. */
  | { kind: 'web-identity'; roleArn: string; tokenFile: string }
  /** EKS Pod Identity: the agent's AWS_CONTAINER_CREDENTIALS_FULL_URI (+ its authorization token file). */
  | { kind: 'pod-identity'; fullUri: string; tokenFile?: string }
  /** The AWS SDK's default chain (environment keys, profiles, instance metadata): opt-in only. */
  | { kind: 'node' };

export type CredentialChoice = { source: CredentialSource } | { failure: Failure };

export const NODE_CREDENTIALS_VALUES = ['deny', 'allow'] as const;

/** Variables that would give the fetcher credentials other than the pod's own. */
const OTHER_SOURCES = ['AWS_ACCESS_KEY_ID', 'AWS_PROFILE', 'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI'] as const;

const NO_IDENTITY_HINT =
  "give the pod an AWS identity: IRSA (eks.amazonaws.com/role-arn on its service account) or an EKS Pod Identity association for its service account, then recreate the pod; the fetcher never falls back to the node's instance role unless the webhook runs with FETCHER_NODE_CREDENTIALS=allow";

export function chooseCredentials(env: Readonly<Record<string, string | undefined>>): CredentialChoice {
  const set = (k: string) => (env[k] ?? '') !== '';
  const node = env[NODE_CREDENTIALS_ENV] ?? '';
  if (node !== '' && !(NODE_CREDENTIALS_VALUES as readonly string[]).includes(node)) {
    return {
      failure: failure('FETCH_SPEC_INVALID', `${NODE_CREDENTIALS_ENV} must be ${NODE_CREDENTIALS_VALUES.join(' or ')} (got ${JSON.stringify(node.slice(0, 40))})`),
    };
  }
  if (set('AWS_ROLE_ARN') && set('AWS_WEB_IDENTITY_TOKEN_FILE')) {
    return { source: { kind: 'web-identity', roleArn: env.AWS_ROLE_ARN!, tokenFile: env.AWS_WEB_IDENTITY_TOKEN_FILE! } };
  }
  if (set('AWS_CONTAINER_CREDENTIALS_FULL_URI')) {
    const source: CredentialSource = { kind: 'pod-identity', fullUri: env.AWS_CONTAINER_CREDENTIALS_FULL_URI! };
    if (set('AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE')) source.tokenFile = env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE!;
    return { source };
  }
  if (node === 'allow') return { source: { kind: 'node' } };

  const why: string[] = [];
  if (set('AWS_ROLE_ARN') !== set('AWS_WEB_IDENTITY_TOKEN_FILE')) {
    why.push(`IRSA is incomplete: ${set('AWS_ROLE_ARN') ? 'AWS_WEB_IDENTITY_TOKEN_FILE' : 'AWS_ROLE_ARN'} is not set`);
  }
  const other = OTHER_SOURCES.filter(set);
  if (other.length > 0) why.push(`${other.join(', ')} ${other.length === 1 ? 'is' : 'are'} set but not used without the node credentials opt-in`);
  return {
    failure: failure(
      'FETCH_NO_IDENTITY',
      `the pod has no AWS identity of its own: neither IRSA (AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE) nor EKS Pod Identity (AWS_CONTAINER_CREDENTIALS_FULL_URI) is in the fetcher's environment${why.length > 0 ? `; ${why.join('; ')}` : ''}; no AWS call was made`,
      { hint: NO_IDENTITY_HINT },
    ),
  };
}
