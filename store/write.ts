// Writes one content to its Secrets Manager secret, and deletes or restores it: the only module of
// write-through that calls AWS. The client is injected (the CLI's comes from the SDK's default
// chain, the writer's from its own role; tests point either at the emulator).
//
// A write is: DescribeSecret (does it exist, is it ours, is it scheduled for deletion, what is
// current) -> CreateSecret, or RestoreSecret if needed, then PutSecretValue only when the content
// token differs from the current version. Nothing is written for an unchanged content.

import {
  CreateSecretCommand,
  DeleteSecretCommand,
  DescribeSecretCommand,
  PutSecretValueCommand,
  RestoreSecretCommand,
  TagResourceCommand,
  type DescribeSecretCommandOutput,
  type SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { contentToken, newTokenKey, ownershipProblem, TOKEN_KEY_TAG, writeProblem, type StoreTarget, type WriteProblem } from './layout.js';

export type WriteOutcome = 'created' | 'updated' | 'unchanged' | 'restored';

export interface Written {
  arn: string;
  versionId: string;
  outcome: WriteOutcome;
}

/** A refused write: a stable code, the operation, and a message naming the AWS error and the remedy. */
export class WriteError extends Error {
  constructor(readonly problem: WriteProblem) {
    super(problem.message);
    this.name = 'WriteError';
  }
}

export interface CallOptions {
  /** Ends every call and retry: the writer's share of the webhook timeout, the CLI's own deadline. */
  signal?: AbortSignal;
}

// Remedies by AWS error name. Messages of Secrets Manager name the secret and the action, never a value.
const REMEDIES: Record<string, string> = {
  AccessDeniedException: 'give the identity this action on the secret (see the IAM policy in docs/write-through.md); for the writer, its own role',
  AccessDenied: 'give the identity this action on the secret (see the IAM policy in docs/write-through.md)',
  EncryptionFailure: 'the KMS key refused: allow kms:GenerateDataKey and kms:Decrypt to this identity through Secrets Manager in the key policy',
  DecryptionFailure: 'the KMS key refused: check its key policy',
  KMSAccessDeniedException: 'the KMS key refused: check its key policy',
  KMSDisabledException: 'the KMS key is disabled: enable it or choose another with --kms-key-id / writeThrough.kmsKeyId',
  LimitExceededException: 'Secrets Manager keeps at most 100 versions younger than 24 hours per secret: write less often (at most once every 10 minutes is AWS\'s advice)',
  InvalidRequestException: 'Secrets Manager refused the request in the secret\'s current state',
  ResourceExistsException: 'a secret of this name was created at the same moment: try again',
  ValidationException: 'the request is not valid for Secrets Manager',
  CredentialsProviderError: 'no AWS credentials were found: set up the SDK\'s default chain (AWS_PROFILE, environment, SSO, IRSA or Pod Identity)',
  ExpiredTokenException: 'the AWS credentials have expired: renew them',
  UnrecognizedClientException: 'the AWS credentials are not valid',
};
const THROTTLING = new Set(['ThrottlingException', 'TooManyRequestsException', 'RequestLimitExceeded', 'Throttling']);

/** A call's failure as a WriteProblem: the operation, the AWS error's name and message, the remedy. */
export function awsProblem(operation: string, name: string, e: unknown): WriteProblem {
  const err = e as { name?: string; message?: string };
  const errName = err?.name ?? 'Error';
  if (errName === 'AbortError' || errName === 'TimeoutError') {
    return writeProblem('WRITE_THROTTLED', operation, `${operation} ${name} did not complete within the deadline (Secrets Manager slow or throttling); nothing more was written: try again`);
  }
  if (THROTTLING.has(errName)) {
    return writeProblem('WRITE_THROTTLED', operation, `${operation} ${name}: ${errName} after retries with backoff (about 50 writes per second per account for the PutSecretValue family): try again later`);
  }
  const message = (err?.message ?? '').replace(/\s+/g, ' ').slice(0, 300);
  const remedy = REMEDIES[errName] ?? 'see the AWS error';
  return writeProblem('WRITE_AWS', operation, `${operation} ${name} failed: ${errName}: ${message} (${remedy})`);
}

async function call<T>(operation: string, name: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (e) {
    throw new WriteError(awsProblem(operation, name, e));
  }
}

export async function describe(sm: SecretsManagerClient, name: string, opts: CallOptions = {}): Promise<DescribeSecretCommandOutput | undefined> {
  try {
    return await sm.send(new DescribeSecretCommand({ SecretId: name }), { abortSignal: opts.signal });
  } catch (e) {
    if ((e as { name?: string }).name === 'ResourceNotFoundException') return undefined;
    throw new WriteError(awsProblem('DescribeSecret', name, e));
  }
}

function versionAt(d: DescribeSecretCommandOutput, stage: string): string | undefined {
  return Object.entries(d.VersionIdsToStages ?? {}).find(([, stages]) => stages?.includes(stage))?.[0];
}

/** Throws WriteError unless the existing secret carries our tags for this target. */
export function checkOwned(d: DescribeSecretCommandOutput, target: StoreTarget): void {
  const why = ownershipProblem(d.Tags, target);
  if (why !== undefined) {
    throw new WriteError(writeProblem('WRITE_NOT_OWNED', target.name, `refusing to write Secrets Manager secret ${target.name}: ${why}. Rename the Kubernetes Secret, or remove or tag the existing secret by hand if it should be ours`));
  }
}

/** Writes `json` to the target's secret, creating, restoring or updating it as needed. */
export async function writeContent(sm: SecretsManagerClient, target: StoreTarget, json: string, opts: CallOptions = {}): Promise<Written> {
  const signal = opts.signal;
  for (let attempt = 0; ; attempt++) {
    const existing = await describe(sm, target.name, opts);
    if (existing === undefined) {
      const key = newTokenKey();
      const token = contentToken(key, target.name, json);
      try {
        const out = await sm.send(
          new CreateSecretCommand({
            Name: target.name,
            SecretString: json,
            ClientRequestToken: token,
            KmsKeyId: target.kmsKeyId,
            Description: 'A Kubernetes Secret kept by aws-secret-injector; its value is a JSON object of the Secret\'s keys.',
            Tags: [...target.tags, { Key: TOKEN_KEY_TAG, Value: key }],
          }),
          { abortSignal: signal },
        );
        return { arn: out.ARN!, versionId: out.VersionId ?? token, outcome: 'created' };
      } catch (e) {
        // Created by someone else between the two calls: look again, once.
        if ((e as { name?: string }).name === 'ResourceExistsException' && attempt === 0) continue;
        throw new WriteError(awsProblem('CreateSecret', target.name, e));
      }
    }
    checkOwned(existing, target);
    const arn = existing.ARN!;
    let restored = false;
    if (existing.DeletedDate !== undefined) {
      await call('RestoreSecret', target.name, () => sm.send(new RestoreSecretCommand({ SecretId: arn }), { abortSignal: signal }));
      restored = true;
    }
    let key = existing.Tags?.find((t) => t.Key === TOKEN_KEY_TAG)?.Value;
    if (key === undefined || key === '') {
      key = newTokenKey();
      const value = key;
      await call('TagResource', target.name, () => sm.send(new TagResourceCommand({ SecretId: arn, Tags: [...target.tags, { Key: TOKEN_KEY_TAG, Value: value }] }), { abortSignal: signal }));
    }
    // Unchanged when the current version is this content written over the previous one.
    const current = versionAt(existing, 'AWSCURRENT');
    if (current !== undefined && current === contentToken(key, target.name, json, versionAt(existing, 'AWSPREVIOUS'))) {
      return { arn, versionId: current, outcome: restored ? 'restored' : 'unchanged' };
    }
    const token = contentToken(key, target.name, json, current);
    await call('PutSecretValue', target.name, () =>
      sm.send(new PutSecretValueCommand({ SecretId: arn, SecretString: json, ClientRequestToken: token }), { abortSignal: signal }),
    );
    return { arn, versionId: token, outcome: restored ? 'restored' : 'updated' };
  }
}

export type DeleteOutcome = 'scheduled' | 'absent' | 'already-scheduled';

/**
 * Schedules the target's secret for deletion after `recoveryDays` (7-30): a later write of the
 * same Secret restores it. Refuses a secret that is not ours.
 */
export async function scheduleDeletion(sm: SecretsManagerClient, target: StoreTarget, recoveryDays: number, opts: CallOptions = {}): Promise<DeleteOutcome> {
  const existing = await describe(sm, target.name, opts);
  if (existing === undefined) return 'absent';
  checkOwned(existing, target);
  if (existing.DeletedDate !== undefined) return 'already-scheduled';
  await call('DeleteSecret', target.name, () =>
    sm.send(new DeleteSecretCommand({ SecretId: existing.ARN!, RecoveryWindowInDays: recoveryDays }), { abortSignal: opts.signal }),
  );
  return 'scheduled';
}
