// `aws-secret-injector write-through`: the in-cluster writer. The webhook's HTTP shell, settings
// and TLS handling serve the writer's own handler (store/review.ts); the Secrets Manager client
// takes the writer's own identity from the SDK's default chain (its ServiceAccount's IRSA role or
// EKS Pod Identity association).

import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { runWith } from '../webhook/main.js';
import { writerHandler, type WriterConfig } from './review.js';

export async function run(argv: string[]): Promise<number> {
  return runWith(argv, 'write-through', (config) => {
    const store = config.mutation.store;
    if (store === undefined) return { errors: ['WRITE_THROUGH_CLUSTER is required: the cluster\'s name in the names of the secrets the writer keeps'] };
    const w = config.writeThrough;
    const writer: WriterConfig = {
      cluster: store.cluster,
      prefix: store.prefix,
      deletionPolicy: w.deletionPolicy,
      recoveryDays: w.recoveryDays,
      deadlineMs: w.deadlineSeconds * 1000,
    };
    if (w.kmsKeyId !== undefined) writer.kmsKeyId = w.kmsKeyId;
    if (w.namespace !== undefined) writer.namespace = w.namespace;
    // The region is the SDK's (AWS_REGION, which the chart sets from WRITE_THROUGH_REGION's value).
    const sm = new SecretsManagerClient({ maxAttempts: 5, ...(store.region !== undefined ? { region: store.region } : {}) });
    return writerHandler(writer, { sm });
  });
}
