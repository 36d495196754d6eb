import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { describe, expect, it } from 'vitest';
import { PREFIX } from './annotations.js';
import { injectManifests, TEMPLATE_PATHS } from './inject.js';
import { run, type Io } from './inject-cli.js';
import { reviewPod } from './review.js';
import { DEFAULT_MUTATION_CONFIG as CONFIG } from './types.js';

const ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:db-password-AbCdEf';
const template = (annotations: Record<string, string> = { [`${PREFIX}secret-arn`]: ARN }) => ({
  metadata: { labels: { app: 'web' }, annotations },
  spec: { containers: [{ name: 'web', image: 'busybox:1.36' }] },
});

function workload(kind: string, t = template()): Record<string, unknown> {
  const path = TEMPLATE_PATHS[kind]!;
  if (path.length === 0) return { apiVersion: 'v1', kind, metadata: { name: 'web', ...t.metadata }, spec: t.spec };
  let obj: Record<string, unknown> = t;
  for (const k of [...path].reverse()) obj = { [k]: obj };
  return { apiVersion: 'apps/v1', kind, metadata: { name: 'web' }, ...obj };
}
const templateOf = (obj: Record<string, any>, kind: string) => TEMPLATE_PATHS[kind]!.reduce((o, k) => o[k], obj);

async function cli(argv: string[], stdin = '', env: NodeJS.ProcessEnv = {}) {
  let out = '';
  let err = '';
  const io: Io = { stdin: () => stdin, stdout: (s) => void (out += s), stderr: (s) => void (err += s), env };
  const code = await run(argv, io);
  return { code, out, err };
}

describe('inject', () => {
  it.each(Object.keys(TEMPLATE_PATHS))('mutates the pod template of a %s exactly as the webhook would', (kind) => {
    const input = workload(kind);
    const result = injectManifests(YAML.stringify(input), CONFIG);
    expect(result).toMatchObject({ errors: [], injected: 1 });
    const got = YAML.parse(result.output);
    const t = templateOf(input, kind);
    const webhook = reviewPod(kind === 'Pod' ? input : t, CONFIG);
    if (webhook.outcome !== 'injected') throw new Error(webhook.outcome);
    const want = kind === 'Pod' ? webhook.pod : { metadata: webhook.pod.metadata, spec: webhook.pod.spec };
    expect(templateOf(got, kind)).toEqual(want);
    // The webhook leaves pods made from the injected template alone.
    expect(reviewPod(templateOf(got, kind), CONFIG).outcome).toBe('already-injected');
  });

  it('knows signal-on-refresh, templates, JSON Pointer keys and whole paths, and refuses a bad one naming it', () => {
    const annotations = {
      [`${PREFIX}secrets`]: '- {ref: prod/app/*, file: app, key: /db/password}\n- {ref: rds-db, file: db.url, template: "postgresql://{{ username }}:{{ password }}@{{ host }}/{{ dbname }}"}',
      [`${PREFIX}region`]: 'eu-west-1',
      [`${PREFIX}refresh`]: '5m',
      [`${PREFIX}signal-on-refresh`]: 'web',
    };
    const input = workload('Deployment', { ...template(annotations), spec: { securityContext: { runAsUser: 1000, runAsGroup: 1000 }, containers: [{ name: 'web', image: 'busybox:1.36' }] } as never });
    const result = injectManifests(YAML.stringify(input), CONFIG);
    expect(result).toMatchObject({ errors: [], injected: 1 });
    const spec = templateOf(YAML.parse(result.output), 'Deployment').spec;
    expect(spec.shareProcessNamespace).toBe(true);
    expect(spec.initContainers.map((c: { securityContext: { runAsUser: number } }) => c.securityContext.runAsUser)).toEqual([1000, 1000]);
    const bad = injectManifests(YAML.stringify(workload('Deployment', template({ [`${PREFIX}secrets`]: '- {ref: x, file: y, template: "{{ a"}' }))), CONFIG);
    expect(bad.errors.join('\n')).toContain('entry 1: template has a "{{" at character 1 that no "}}" closes');
  });

  it('passes other kinds, and pods without annotations, through unchanged', () => {
    const docs = [
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', annotations: { [`${PREFIX}secret-arn`]: ARN } }, data: { a: '1' } },
      workload('Deployment', template({})),
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 's' }, spec: { ports: [{ port: 80 }] } },
    ];
    const text = docs.map((d) => YAML.stringify(d)).join('---\n');
    const result = injectManifests(text, CONFIG);
    expect(result).toMatchObject({ errors: [], warnings: [], injected: 0 });
    expect(YAML.parseAllDocuments(result.output).map((d) => d.toJS())).toEqual(docs);
  });

  it('names a document without kind, and a kind it does not know that holds a pod template, instead of passing them in silence', () => {
    const snippet = { metadata: { name: 'snippet', annotations: { [`${PREFIX}secret-arn`]: ARN } }, spec: template().spec };
    const rollout = { apiVersion: 'argoproj.io/v1alpha1', kind: 'Rollout', metadata: { name: 'r' }, spec: { template: template() } };
    const text = [snippet, rollout].map((d) => YAML.stringify(d)).join('---\n');
    const result = injectManifests(text, CONFIG);
    expect(result).toMatchObject({ errors: [], injected: 0 });
    expect(result.warnings).toEqual([
      '(no kind) snippet (document 1): has no kind, so no pod template was looked for; passed through unchanged',
      expect.stringMatching(/^Rollout r \(document 2\): Rollout is not a kind inject knows \(Pod, Deployment, .*CronJob, ReplicationController\); its pod template was not mutated here/),
    ]);
    expect(YAML.parseAllDocuments(result.output).map((d) => d.toJS())).toEqual([snippet, rollout]);
  });

  it('keeps comments and handles many documents and Lists', () => {
    const text = [
      '# leading comment',
      YAML.stringify(workload('Deployment')).replace('image: busybox:1.36', 'image: busybox:1.36 # pinned'),
      '---',
      YAML.stringify({ apiVersion: 'v1', kind: 'List', items: [workload('Pod'), workload('Job')] }),
    ].join('\n');
    const result = injectManifests(text, CONFIG);
    expect(result).toMatchObject({ errors: [], injected: 3 });
    expect(result.output).toContain('# leading comment');
    expect(result.output).toContain('# pinned');
    const [, list] = YAML.parseAllDocuments(result.output).map((d) => d.toJS());
    expect(list.items[0].spec.initContainers[0].name).toBe('secret-fetcher');
    expect(list.items[1].spec.template.spec.initContainers[0].name).toBe('secret-fetcher');
  });

  it('gives the webhook denial for invalid annotations, and no output', () => {
    const bad = workload('StatefulSet', template({ [`${PREFIX}secret-arn`]: 'not a ref', [`${PREFIX}region`]: 'x' }));
    const result = injectManifests(`${YAML.stringify(workload('Pod'))}---\n${YAML.stringify(bad)}`, CONFIG);
    expect(result.output).toBe('');
    expect(result.errors).toHaveLength(1);
    expect(result.errors[0]).toMatch(/^StatefulSet web \(document 2\): aws-secret-injector \(parse\): 2 problems: secrets\.k8s\.aws\/region: .*secret-arn/);
  });

  it('resolves YAML anchors, aliases and merge keys as kubectl does before patching', () => {
    // A mount list shared by alias between two containers, and annotations brought in by a merge key.
    const text = [
      'apiVersion: apps/v1',
      'kind: Deployment',
      'metadata: {name: web}',
      'spec:',
      '  template:',
      '    metadata:',
      `      annotations: {<<: &ann {${PREFIX}secret-arn: "${ARN}"}}`,
      '    spec:',
      '      containers:',
      '      - {name: a, image: x, volumeMounts: &vm [{name: data, mountPath: /data}]}',
      '      - {name: b, image: x, volumeMounts: *vm}',
      '      volumes: [{name: data, emptyDir: {}}]',
      '',
    ].join('\n');
    const result = injectManifests(text, CONFIG);
    expect(result).toMatchObject({ errors: [], injected: 1 });
    const got = YAML.parse(result.output, { merge: true });
    const webhook = reviewPod(YAML.parse(text, { merge: true }).spec.template, CONFIG);
    if (webhook.outcome !== 'injected') throw new Error(webhook.outcome);
    expect(got.spec.template).toEqual({ metadata: webhook.pod.metadata, spec: webhook.pod.spec });
    expect(got.spec.template.spec.containers.map((c: { volumeMounts: unknown[] }) => c.volumeMounts.length)).toEqual([2, 2]);
  });

  it('writes untouched fields back with the meaning kubectl gives them (YAML 1.1 octal, timestamps as text)', () => {
    const text = [
      'apiVersion: v1',
      'kind: Pod',
      'metadata:',
      '  name: web',
      '  annotations:',
      `    ${PREFIX}secret-arn: ${ARN}`,
      '    deployed-at: 2024-01-01',
      'spec:',
      '  containers:',
      '  - name: web',
      '    image: busybox:1.36',
      '    volumeMounts: [{name: conf, mountPath: /etc/app}]',
      '  volumes:',
      '  - name: conf',
      '    configMap: {name: app, defaultMode: 0644}',
      '',
    ].join('\n');
    const result = injectManifests(text, CONFIG);
    expect(result).toMatchObject({ errors: [], injected: 1 });
    expect(result.output).toContain('configMap: { name: app, defaultMode: 0644 }');
    expect(result.output).toContain('deployed-at: 2024-01-01\n');
    expect(YAML.parse(result.output, { version: '1.1' }).spec.volumes[0].configMap.defaultMode).toBe(0o644);
  });

  it('names an annotation whose unquoted value YAML reads as other than text', () => {
    const text = `kind: Pod\nmetadata:\n  name: web\n  annotations:\n    ${PREFIX}sidecarInjectorWebhook: yes\n    ${PREFIX}secret-arn: ${ARN}\nspec:\n  containers: [{name: web, image: busybox}]\n`;
    expect(injectManifests(text, CONFIG).errors).toEqual([
      `Pod web (document 1): aws-secret-injector (should-inject): metadata.annotations: must map names to strings; "${PREFIX}sidecarInjectorWebhook" is "true": quote the value in YAML`,
    ]);
  });

  it('warns about secret annotations on a workload\'s own metadata, which the webhook never sees', () => {
    const d = workload('Deployment', template({}));
    (d.metadata as Record<string, unknown>).annotations = { [`${PREFIX}secret-arn`]: ARN, 'example.com/x': 'y' };
    const result = injectManifests(YAML.stringify(d), CONFIG);
    expect(result).toMatchObject({ errors: [], injected: 0 });
    expect(result.warnings).toEqual([
      `Deployment web (document 1): ${PREFIX}secret-arn on the Deployment's own metadata are ignored; put them on the pod template (spec.template.metadata.annotations)`,
    ]);
  });

  it('reports unreadable YAML', () => {
    expect(injectManifests('a: [1\n', CONFIG).errors[0]).toContain('document 1: not valid YAML');
    expect(injectManifests('', CONFIG)).toMatchObject({ output: '', errors: [] });
  });

  it('agrees with every golden fixture whose pod is injected', () => {
    const root = new URL('../test/fixtures/', import.meta.url).pathname;
    let checked = 0;
    for (const name of readdirSync(root)) {
      let patch: string;
      try {
        patch = readFileSync(join(root, name, 'patch.json'), 'utf8');
      } catch {
        continue;
      }
      expect(patch.length).toBeGreaterThan(0);
      const request = JSON.parse(readFileSync(join(root, name, 'request.json'), 'utf8'));
      const pod = JSON.parse(readFileSync(join(root, name, 'pod.json'), 'utf8'));
      const result = injectManifests(YAML.stringify(request.request.object), CONFIG);
      expect(YAML.parse(result.output), name).toEqual(pod);
      checked++;
    }
    expect(checked).toBeGreaterThan(10);
  });
});

describe('inject command', () => {
  const dir = mkdtempSync(join(tmpdir(), 'inject-'));
  const file = join(dir, 'pod.yaml');
  writeFileSync(file, YAML.stringify(workload('Pod')));

  it('reads a file and prints the result', async () => {
    const r = await cli(['-f', file]);
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(YAML.parse(r.out).spec.initContainers[0].image).toBe(CONFIG.fetcherImage);
  });

  it('reads standard input with -f - and takes fetcher settings from the environment', async () => {
    const r = await cli(['--filename', '-'], YAML.stringify(workload('Pod')), { FETCHER_IMAGE: 'registry.example.com/fetcher:1.2.3', PORT: 'ignored' });
    expect(r.code).toBe(0);
    expect(YAML.parse(r.out).spec.initContainers[0].image).toBe('registry.example.com/fetcher:1.2.3');
  });

  it('prints warnings on stderr', async () => {
    const r = await cli(['-f', '-'], YAML.stringify(workload('Pod', template({ [`${PREFIX}secret-arn`]: ARN, [`${PREFIX}regoin`]: 'x' }))));
    expect(r.code).toBe(0);
    expect(r.err).toBe(`Warning: Pod web (document 1): unknown annotation ${PREFIX}regoin is ignored; did you mean ${PREFIX}region?\n`);
  });

  it.each([
    [[], 2, "required option '-f, --filename <file>' not specified"],
    [['-f', join(dir, 'missing.yaml')], 2, 'cannot read'],
    [['-f', file, 'extra'], 2, 'too many arguments'],
  ])('%j exits %i: %s', async (argv, code, message) => {
    const r = await cli(argv);
    expect(r.code).toBe(code);
    expect(r.out).toBe('');
    expect(r.err).toContain(message);
  });

  it('exits 1 with the denial for invalid annotations', async () => {
    const r = await cli(['-f', '-'], YAML.stringify(workload('Job', template({ [`${PREFIX}secret-arn`]: ARN, [`${PREFIX}containers`]: 'nope' }))));
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toContain('error: Job web (document 1): aws-secret-injector (validate): secrets.k8s.aws/containers: names container "nope"');
  });

  it('exits 2 on a bad fetcher setting', async () => {
    const r = await cli(['-f', file], '', { FETCHER_UID: '0' });
    expect(r.code).toBe(2);
    expect(r.err).toContain('FETCHER_UID');
  });

  it('prints help', async () => {
    const r = await cli(['--help']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('-f, --filename <file>');
    expect(r.out).toContain('--values <file>');
  });

  describe('takes the chart\'s values files, as helm install --values does', () => {
    const values = join(dir, 'values.yaml');
    writeFileSync(values, [
      'nativeSidecars: false',
      'fetcher:',
      '  image: {repository: registry.example.com/fetcher, tag: "2.0"}',
      '  resources: {limits: null}',
      '  network:',
      '    httpsProxy: http://proxy.internal:3128',
      '    caBundle: {configMap: corp-ca}',
      'refresher: {resources: {requests: {cpu: 7m}}}',
      '',
    ].join('\n'));
    const later = join(dir, 'later.yaml');
    writeFileSync(later, 'fetcher: {image: {tag: "2.1"}}\n');
    const refresh = YAML.stringify(workload('Deployment', template({ [`${PREFIX}secret-arn`]: ARN, [`${PREFIX}refresh`]: '5m' })));

    it('native sidecars off: a pod asking for refresh gets the webhook\'s denial', async () => {
      const r = await cli(['--values', values, '-f', '-'], refresh);
      expect(r.code).toBe(1);
      expect(r.err).toContain('secrets.k8s.aws/refresh: needs native sidecars (Kubernetes 1.29+), which this cluster does not run');
      // nativeSidecars left to the cluster's version, as the chart does.
      expect((await cli(['--values', later, '--kube-version', '1.28.3', '-f', '-'], refresh)).code).toBe(1);
      expect((await cli(['--values', later, '--kube-version', 'v1.29.0', '-f', '-'], refresh)).code).toBe(0);
    });

    it('image, proxy, CA bundle and removed limits into the fetcher; later files and the environment win', async () => {
      const r = await cli(['--values', values, '--values', later, '-f', file], '', { FETCHER_CPU_REQUEST: '20m' });
      expect(r.err).toBe('');
      const out = YAML.parse(r.out);
      const fetcher = out.spec.initContainers[0];
      expect(fetcher.image).toBe('registry.example.com/fetcher:2.1');
      expect(fetcher.resources).toEqual({ requests: { cpu: '20m', memory: '32Mi' }, limits: {} });
      expect(fetcher.env).toContainEqual({ name: 'HTTPS_PROXY', value: 'http://proxy.internal:3128' });
      expect(out.spec.volumes).toContainEqual(expect.objectContaining({ name: 'secret-fetcher-ca', configMap: expect.objectContaining({ name: 'corp-ca' }) }));
    });

    it.each([
      ['a: [', 'not valid YAML'],
      ['- a\n- b\n', 'must be a mapping of values'],
      ['fetcher: {uid: 0}\n', 'fetcher.uid: must be >= 1'],
      ['fetcher: {resources: {limit: {cpu: 1}}}\n', 'fetcher.resources: must NOT have additional properties "limit"'],
      ['fetcher: {deadlineSeconds: 0}\n', 'fetcher.deadlineSeconds: must be >= 1'],
      ['fetcher: {image: {pullPolicy: Sometimes}}\n', 'fetcher.image.pullPolicy: must be equal to one of the allowed values'],
    ])('%j exits 2: %s', async (text, message) => {
      const bad = join(dir, 'bad.yaml');
      writeFileSync(bad, text);
      const r = await cli(['--values', bad, '-f', file]);
      expect(r.code).toBe(2);
      expect(r.err).toContain(message);
    });
  });
});

describe('inject: cost linear in the input', () => {
  const pod = (i: number) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name: `p${i}`, annotations: { [`${PREFIX}secret.db`]: ARN } }, spec: { containers: [{ name: 'app', image: 'busybox' }] } });
  const best = (text: string, runs: number) =>
    Math.min(
      ...Array.from({ length: runs }, () => {
        const t0 = performance.now();
        const r = injectManifests(text, CONFIG);
        expect(r.errors).toEqual([]);
        return performance.now() - t0;
      }),
    );

  // Compared with the same content in another shape, measured in the same run: holds on a busy
  // machine, and the quadratic versions took tens of times as long.
  it('injects a List of pods in about the time of the same pods as separate documents', () => {
    const pods = Array.from({ length: 600 }, (_, i) => pod(i));
    const list = YAML.stringify({ apiVersion: 'v1', kind: 'List', items: pods });
    const docs = pods.map((p) => YAML.stringify(p)).join('---\n');
    const r = injectManifests(list, CONFIG);
    expect(r.injected).toBe(600);
    expect(best(list, 2) / best(docs, 2)).toBeLessThan(4);
  }, 120_000);

  it('passes a 1 MB ConfigMap through in about the time of the same data in 20 ConfigMaps', () => {
    const data = Array.from({ length: 60_000 }, (_, i) => [`key-${i}`, `value-${i}`] as const);
    const configMap = (entries: ReadonlyArray<readonly [string, string]>, name: string) =>
      YAML.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data: Object.fromEntries(entries) });
    const one = configMap(data, 'big');
    expect(one.length).toBeGreaterThan(1_000_000);
    const many = Array.from({ length: 20 }, (_, i) => configMap(data.slice(i * 3_000, (i + 1) * 3_000), `part-${i}`)).join('---\n');
    expect(injectManifests(one, CONFIG).output).toBe(one);
    expect(best(one, 2) / best(many, 2)).toBeLessThan(4);
  }, 120_000);

  it('still refuses a key written twice in one mapping, naming it', () => {
    const r = injectManifests('apiVersion: v1\nkind: ConfigMap\ndata:\n  a: "1"\n  b: "2"\n  a: "3"\n', CONFIG);
    expect(r.errors).toEqual(['document 1: not valid YAML: key "a" appears twice in one mapping']);
  });
});
