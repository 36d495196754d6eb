// The AdmissionReviews the webhook benches send: as the apiserver sends them for a Deployment's pod
// (IRSA's variables and token mount in each container), with the annotations given.

/** A pod CREATE review of `object` in namespace bench, as the apiserver sends it. */
export function podCreate(uid, object) {
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'bench',
      operation: 'CREATE',
      userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller' },
      object,
      dryRun: false,
    },
  });
}

export function review(uid, annotations, containers = 1) {
  return podCreate(uid, {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { generateName: 'api-7d4b9c-', namespace: 'bench', labels: { app: 'api' }, annotations },
    spec: {
      serviceAccountName: 'api',
      containers: Array.from({ length: containers }, (_, i) => ({
        name: `c${i}`,
        image: 'public.ecr.aws/docker/library/busybox:1.36',
        env: [
          { name: 'AWS_ROLE_ARN', value: 'arn:aws:iam::123456789012:role/api' },
          { name: 'AWS_WEB_IDENTITY_TOKEN_FILE', value: '/var/run/secrets/eks.amazonaws.com/serviceaccount/token' },
        ],
        volumeMounts: [{ name: 'aws-iam-token', mountPath: '/var/run/secrets/eks.amazonaws.com/serviceaccount', readOnly: true }],
      })),
      volumes: [{ name: 'aws-iam-token', projected: { sources: [{ serviceAccountToken: { audience: 'sts.amazonaws.com', path: 'token' } }] } }],
    },
  });
}

export const SEED = { 'secrets.k8s.aws/sidecarInjectorWebhook': 'enabled', 'secrets.k8s.aws/secret-arn': 'arn:aws:secretsmanager:us-east-1:123456789012:secret:app-0-AbCdEf' };

// As many short entries as fit in the apiserver's 256 KiB of annotations: the most work one review
// can ask of the webhook (a cost that grows faster than the list would hold the event loop for seconds).
export const LARGEST_ENTRIES = 19_000;
export const LARGEST = review('largest', {
  'secrets.k8s.aws/region': 'us-east-1',
  'secrets.k8s.aws/secrets': Array.from({ length: LARGEST_ENTRIES }, (_, i) => `- ref: s${i}`).join('\n'),
});

