// Workload templates reviewed where users apply them: `kubectl apply` of a Deployment, a CronJob
// shows the warnings and the denial its pods would get, through the real apiserver and our built
// webhook. The outputs a user sees are written to the run's log directory (kubectl-apply-*.txt).

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { LOG_DIR } from '../helpers/tools.js';
import { TEMPLATES_WEBHOOK_NAME, WEBHOOK_NAME } from '../helpers/webhook-process.js';
import { describeE2E, e2e, useNamespace, useWebhook } from './context.js';

const ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:database-password-hlRvvF';

function podTemplate(annotations: Record<string, string>) {
  return {
    metadata: { labels: { app: 'webserver' }, annotations },
    spec: { containers: [{ name: 'webserver', image: 'busybox:1.36', command: ['sh', '-c', 'cat /tmp/secret && sleep 3600'] }] },
  };
}

function deployment(name: string, annotations: Record<string, string>): string {
  return JSON.stringify({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name },
    spec: { replicas: 1, selector: { matchLabels: { app: 'webserver' } }, template: podTemplate(annotations) },
  });
}

/** What the user typed and what kubectl printed, kept for the docs and release notes. */
function keep(name: string, command: string, out: { code: number; stdout: string; stderr: string }): void {
  mkdirSync(LOG_DIR, { recursive: true });
  writeFileSync(join(LOG_DIR, `kubectl-apply-${name}.txt`), `$ ${command}\n${out.stderr}${out.stdout}(exit ${out.code})\n`);
}

describeE2E('workload templates reviewed at kubectl apply', () => {
  const webhook = useWebhook();
  const namespace = useNamespace('templates');

  it('a Deployment with a misspelt key: created, and kubectl prints our warning', async () => {
    const { cluster } = e2e();
    const out = await cluster.kubectl(['apply', '-n', namespace(), '-f', '-'], {
      input: deployment('misspelt', { 'secrets.k8s.aws/secret-arn': ARN, 'secrets.k8s.aws/refesh': '5m' }),
    });
    keep('misspelt', 'kubectl apply -f deployment.yaml', out);
    expect(out.stdout).toBe('deployment.apps/misspelt created\n');
    expect(out.stderr).toBe('Warning: unknown annotation secrets.k8s.aws/refesh is ignored; did you mean secrets.k8s.aws/refresh?\n');
    // An update that changes the template is reviewed again; one that does not, is not.
    const again = await cluster.kubectl(['apply', '-n', namespace(), '-f', '-'], {
      input: deployment('misspelt', { 'secrets.k8s.aws/secret-arn': ARN, 'secrets.k8s.aws/refesh': '10m' }),
    });
    expect(again.stderr).toContain('did you mean secrets.k8s.aws/refresh?');
    const scaled = await cluster.kubectl(['scale', '-n', namespace(), 'deployment/misspelt', '--replicas=2']);
    expect(scaled.stderr).toBe('');
  });

  it('a Deployment whose pods would be refused is itself refused, with the message a pod gets', async () => {
    const { cluster } = e2e();
    const annotations = { 'secrets.k8s.aws/secret-arn': ARN, 'secrets.k8s.aws/mode': '999' };
    const out = await cluster.kubectl(['apply', '-n', namespace(), '-f', '-'], { input: deployment('invalid', annotations), allowFailure: true });
    keep('invalid', 'kubectl apply -f deployment.yaml', out);
    expect(out.code).not.toBe(0);
    const pod = await cluster.kubectl(['create', '--dry-run=server', '-n', namespace(), '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', ...podTemplate(annotations).metadata }, spec: podTemplate(annotations).spec }),
      allowFailure: true,
    });
    const message = /denied the request: (.*)$/m.exec(pod.stderr)?.[1];
    expect(message, pod.stderr).toMatch(/^aws-secret-injector \(parse\): secrets\.k8s\.aws\/mode: "999" is not a file mode/);
    expect(pod.stderr).toContain(`admission webhook "${WEBHOOK_NAME}" denied the request`);
    expect(out.stderr).toBe(
      `Error from server (Forbidden): error when creating "STDIN": admission webhook "${TEMPLATES_WEBHOOK_NAME}" denied the request: ${message}\n`,
    );
    const list = await cluster.kubectl(['get', 'deployments', '-n', namespace(), '-o', 'name']);
    expect(list.stdout).not.toContain('invalid');
  });

  it("a CronJob's nested template (spec.jobTemplate.spec.template) is reviewed", async () => {
    const { cluster } = e2e();
    const cronJob = (annotations: Record<string, string>) =>
      JSON.stringify({
        apiVersion: 'batch/v1',
        kind: 'CronJob',
        metadata: { name: 'nightly' },
        spec: { schedule: '0 3 * * *', jobTemplate: { spec: { template: { ...podTemplate(annotations), spec: { ...podTemplate(annotations).spec, restartPolicy: 'OnFailure' } } } } },
      });
    const refused = await cluster.kubectl(['apply', '-n', namespace(), '-f', '-'], {
      input: cronJob({ 'secrets.k8s.aws/secret-arn': ARN, 'secrets.k8s.aws/containers': 'web' }),
      allowFailure: true,
    });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain(
      `admission webhook "${TEMPLATES_WEBHOOK_NAME}" denied the request: aws-secret-injector (validate): secrets.k8s.aws/containers: names container "web", which the pod does not have (containers: webserver)`,
    );
    const warned = await cluster.kubectl(['apply', '-n', namespace(), '-f', '-'], { input: cronJob({ 'secret.k8s.aws/secret-arn': ARN, 'secrets.k8s.aws/secret-arn': ARN }) });
    expect(warned.stdout).toBe('cronjob.batch/nightly created\n');
    expect(warned.stderr).toBe('Warning: annotation secret.k8s.aws/secret-arn is ignored; did you mean the prefix secrets.k8s.aws/?\n');
  });

  it('a workload without our annotations is never sent (matchConditions)', async () => {
    const { cluster } = e2e();
    const before = webhook().log().length;
    await cluster.kubectl(['apply', '-n', namespace(), '-f', '-'], { input: deployment('plain', {}) });
    expect(webhook().log().slice(before)).not.toContain('"name":"plain"');
    // …while an annotated one was (its log line names it).
    expect(webhook().log()).toMatch(/"kind":"Deployment"[^\n]*"outcome":"template-denied"/);
  });
});
