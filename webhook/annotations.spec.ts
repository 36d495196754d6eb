import { describe, expect, it, vi } from 'vitest';
import {
  PREFIX,
  REGISTRY,
  lookup,
  parseAnnotations,
  parseDuration,
  registryNames,
  renderAnnotationTable,
  shouldInject,
  suggestKey,
  unknownKeyWarnings,
  type InjectionRequest,
} from './annotations.js';

const ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:db-password-AbCdEf';
const PARTIAL = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/api-key';
const SSM = 'arn:aws:ssm:us-east-1:123456789012:parameter/app/config';
const DEFAULTS = { mountPath: '/tmp' };
const k = (name: string) => `${PREFIX}${name}`;

function ok(annotations: Record<string, string>): InjectionRequest {
  const r = parseAnnotations(annotations, DEFAULTS);
  if ('problems' in r) throw new Error(JSON.stringify(r.problems));
  return r.request;
}
function bad(annotations: Record<string, string>): string[] {
  const r = parseAnnotations(annotations, DEFAULTS);
  if (!('problems' in r)) throw new Error('expected problems');
  return r.problems.map((p) => `${p.subject}: ${p.message}`);
}

describe('registry', () => {
  it('no registered name is a prefix of another', () => {
    const names = registryNames();
    for (const a of names) for (const b of names) if (a !== b) expect(b.startsWith(a), `${a} / ${b}`).toBe(false);
  });

  it.each([
    ['secret-arn', 'secret-arn'],
    ['secret.db', 'secret.<file>'],
    ['secrets', 'secrets'],
    ['secret-filename', 'secret-filename'],
    ['status', 'status'],
  ])('%s belongs to %s', (key, name) => {
    expect(lookup(k(key))?.name).toBe(name);
  });

  it.each(['secret', 'secretsx', 'secret-arnx', 'Secret-arn', 'other/secret-arn'])('%s is not registered', (key) => {
    expect(lookup(k(key))).toBeUndefined();
  });

  it('every entry is documented', () => {
    for (const d of REGISTRY) {
      expect(d.doc.length).toBeGreaterThan(10);
      expect(d.doc).not.toMatch(/\n|\|(?!\s)/);
    }
    expect(renderAnnotationTable()).toContain('`secrets.k8s.aws/secret.<file>`');
  });
});

describe('each key, good and bad values', () => {
  it.each([
    [{ [k('secret-arn')]: ARN }, { items: [{ ref: ARN, file: 'secret' }] }],
    [{ [k('secret-arn')]: ` ${ARN} ` }, { items: [{ ref: ARN, file: 'secret' }] }],
    [{ [k('secret-arn')]: 'db-password' }, { items: [{ ref: 'db-password', file: 'secret' }] }],
    [{ [k('secret-arn')]: SSM, [k('secret-filename')]: 'config.json' }, { items: [{ ref: SSM, file: 'config.json' }] }],
    [{ [k('secret.db')]: ARN, [k('secret.api_key')]: PARTIAL }, { items: [{ ref: PARTIAL, file: 'api_key' }, { ref: ARN, file: 'db' }] }],
    [{ [k('secret.x')]: ARN, [k('mount-path')]: '/var/run/app-secrets' }, { mountPath: '/var/run/app-secrets' }],
    [{ [k('secret.x')]: ARN, [k('mount-path')]: '/app/secrets' }, { mountPath: '/app/secrets' }],
    // The fetcher mounts the volume at its own path, so the app may use any of these.
    [{ [k('secret.x')]: ARN, [k('mount-path')]: '/app' }, { mountPath: '/app' }],
    [{ [k('secret.x')]: ARN, [k('mount-path')]: '/nodejs/bin' }, { mountPath: '/nodejs/bin' }],
    [{ [k('secret.x')]: ARN, [k('mount-path')]: '/etc' }, { mountPath: '/etc' }],
    [{ [k('secret.x')]: ARN, [k('mount-path')]: '/usr/lib' }, { mountPath: '/usr/lib' }],
    [{ [k('secret.x')]: ARN, [k('mount-path')]: '/dev/shm' }, { mountPath: '/dev/shm' }],
    [{ [k('secret.x')]: ARN, [k('mount-path')]: '/etc/aws-secret-injector/ca' }, { mountPath: '/etc/aws-secret-injector/ca' }],
    [{ [k('secret.x')]: ARN, [k('mount-path')]: '/dev/shm' }, { mountPath: '/dev/shm' }],
    [{ [k('secret.x')]: ARN, [k('mount-path')]: '/etc/aws-secret-injector/ca' }, { mountPath: '/etc/aws-secret-injector/ca' }],
    [{ [k('secret.x')]: ARN, [k('containers')]: 'app, sidecar' }, { containers: ['app', 'sidecar'] }],
    [{ [k('secret.x')]: ARN, [k('role-arn')]: 'arn:aws:iam::123456789012:role/app' }, { roleArn: 'arn:aws:iam::123456789012:role/app' }],
    [{ [k('secret.x')]: 'name', [k('region')]: 'eu-central-1' }, { region: 'eu-central-1' }],
    [{ [k('secret.x')]: ARN, [k('failover-region')]: 'us-east-2' }, { failoverRegion: 'us-east-2' }],
    [{ [k('secret.x')]: ARN, [k('mode')]: '0440' }, { mode: 0o440 }],
    [{ [k('secret.x')]: ARN, [k('mode')]: '400' }, { mode: 0o400 }],
    [{ [k('secret.x')]: ARN, [k('refresh')]: '1h30m' }, { refreshSeconds: 5400 }],
    [{ [k('secret.x')]: ARN, [k('refresh')]: '5m', [k('signal-on-refresh')]: 'app' }, { refreshSignal: { container: 'app', signal: 'SIGHUP' } }],
    [{ [k('secret.x')]: ARN, [k('refresh')]: '5m', [k('signal-on-refresh')]: 'web:SIGUSR1' }, { refreshSignal: { container: 'web', signal: 'SIGUSR1' } }],
    [{ [k('secret.x')]: ARN, [k('refresh')]: '5m', [k('signal-on-refresh')]: 'web:usr2' }, { refreshSignal: { container: 'web', signal: 'SIGUSR2' } }],
    [{ [k('secret.x')]: ARN }, { mountPath: '/tmp', mode: 0o444 }],
  ])('%j parses', (annotations, expected) => {
    expect(ok(annotations)).toMatchObject(expected);
  });

  it.each([
    [{ [k('secret-arn')]: '' }, 'secret-arn: reference is empty'],
    [{ [k('secret.x')]: ARN, [k('signal-on-refresh')]: 'app' }, 'signal-on-refresh: applies only with secrets.k8s.aws/refresh, which is not set'],
    [{ [k('secret.x')]: ARN, [k('refresh')]: '5m', [k('signal-on-refresh')]: 'app:SIGKILL' }, 'signal-on-refresh: "SIGKILL" is not a signal the refresher sends: one of SIGHUP, SIGUSR1'],
    [{ [k('secret.x')]: ARN, [k('refresh')]: '5m', [k('signal-on-refresh')]: 'App' }, 'signal-on-refresh: "App" must be a container name'],
    [{ [k('secret.x')]: ARN, [k('refresh')]: '5m', [k('signal-on-refresh')]: 'a:HUP:x' }, 'must be a container name, optionally followed by ":" and a signal'],
    [{ [k('secret-arn')]: 'arn:aws:s3:::bucket/key' }, 'secret-arn: reference'],
    [{ [k('secret-arn')]: 'arn:aws:secretsmanager:mars:123:secret:x' }, 'is not a valid Secrets Manager ARN'],
    [{ [k('secret-arn')]: ARN, [k('secret-filename')]: '../etc/passwd' }, 'secret-filename: "../etc/passwd" is not a plain file name'],
    [{ [k('secret-arn')]: ARN, [k('secret-filename')]: '.secrets-ready' }, 'is reserved'],
    [{ [k('secret-arn')]: ARN, [k('secret-filename')]: '..data' }, 'secret-filename: "..data" is not a plain file name'],
    [{ [k('secret-filename')]: 'x' }, 'secret-filename: applies only with'],
    [{ [k('secret...')]: ARN }, 'secret...: file name'],
    [{ [k('secret.db')]: 'has space' }, 'secret.db: reference'],
    [{ [k('secret.x')]: ARN, [k('mount-path')]: 'relative' }, 'mount-path: "relative" must be an absolute path'],
    [{ [k('secret.x')]: ARN, [k('mount-path')]: '/' }, 'mount-path'],
    [{ [k('secret.x')]: ARN, [k('mount-path')]: '/a/../b' }, 'mount-path'],
    [{ [k('secret.x')]: ARN, [k('mount-path')]: '/tmp/' }, 'mount-path'],
    [{ [k('secret.x')]: ARN, [k('mount-path')]: '/etc/resolv.conf' }, 'mount-path: /etc/resolv.conf is a file the kubelet mounts into every container'],
    [{ [k('secret.x')]: ARN, [k('mount-path')]: '/dev/termination-log' }, 'mount-path: /dev/termination-log is a file the kubelet mounts'],
    [{ [k('secret.x')]: ARN, [k('mount-path')]: '/sys' }, 'mount-path: /sys belongs to the container runtime'],
    [{ [k('secret.x')]: ARN, [k('mount-path')]: '/proc/x' }, 'mount-path: /proc/x belongs to the container runtime'],
    [{ [k('secret.x')]: ARN, [k('mount-path')]: '/dev' }, 'mount-path: /dev belongs to the container runtime'],
    [{ [k('secret.x')]: ARN, [k('containers')]: 'App' }, 'containers: "App" must be a comma-separated list'],
    [{ [k('secret.x')]: ARN, [k('containers')]: 'a,,b' }, 'containers'],
    [{ [k('secret.x')]: ARN, [k('containers')]: 'a,a' }, 'names container "a" twice'],
    [{ [k('secret.x')]: ARN, [k('role-arn')]: 'arn:aws:iam::123:role/x' }, 'role-arn: "arn:aws:iam::123:role/x" is not an IAM role ARN'],
    [{ [k('secret.x')]: ARN, [k('role-arn')]: 'arn:aws:iam::123456789012:user/x' }, 'role-arn'],
    [{ [k('secret.x')]: ARN, [k('region')]: 'mars-1' }, 'region: "mars-1" is not an AWS region'],
    [{ [k('secret.x')]: ARN, [k('failover-region')]: 'us-east' }, 'failover-region: "us-east" is not an AWS region'],
    [{ [k('secret.x')]: ARN, [k('region')]: 'us-east-1', [k('failover-region')]: 'us-east-1' }, 'failover-region: is "us-east-1", the same as secrets.k8s.aws/region'],
    [{ [k('secret.x')]: ARN, [k('mode')]: '0755' }, 'mode: "0755" is not a file mode'],
    [{ [k('secret.x')]: ARN, [k('mode')]: '0044' }, 'mode'],
    [{ [k('secret.x')]: ARN, [k('mode')]: 'rw' }, 'mode'],
    [{ [k('secret.x')]: ARN, [k('refresh')]: '5 minutes' }, 'refresh: "5 minutes" is not a duration'],
    [{ [k('secret.x')]: ARN, [k('refresh')]: '1s' }, 'shorter than the minimum'],
    [{ [k('secret.x')]: ARN, [k('refresh')]: '24h1s' }, 'refresh: "24h1s" is longer than the maximum of 24h'],
    [{ [k('secret.x')]: ARN, [k('refresh')]: '' }, 'refresh'],
    [{ [k('secret-arn')]: ARN, [k('secret.secret')]: ARN }, 'writes file "secret", which secrets.k8s.aws/secret-arn writes too'],
    [{ [k('secret.conf')]: ARN, [k('secrets')]: `[{ref: "${ARN}", explode: true, file: conf}]` }, 'secret.conf: file "conf" is also the directory secrets.k8s.aws/secrets entry 1 explodes into'],
    [{ [k('secret.conf')]: ARN, [k('secrets')]: `[{ref: "${ARN}", explode: true, file: conf/app}]` }, 'secret.conf: file "conf" is also a directory of "conf/app", the directory secrets.k8s.aws/secrets entry 1 explodes into'],
  ])('%j is refused: %s', (annotations, message) => {
    expect(bad(annotations).join('\n')).toContain(message);
  });

  it('collects every problem at once', () => {
    const problems = bad({
      [k('secret-arn')]: 'bad ref',
      [k('region')]: 'nowhere',
      [k('mode')]: '9',
      [k('containers')]: '_',
    });
    expect(problems.map((p) => p.split(':')[0])).toEqual(
      expect.arrayContaining([k('secret-arn'), k('region'), k('mode'), k('containers')]),
    );
    expect(problems).toHaveLength(4);
  });
});

describe('the full form (secrets)', () => {
  it.each([
    [`- ref: ${ARN}\n  file: db/password`, [{ ref: ARN, file: 'db/password' }]],
    [JSON.stringify([{ ref: ARN, file: 'db.json', format: 'json' }]), [{ ref: ARN, file: 'db.json', format: 'json' }]],
    [`- ref: ${ARN}`, [{ ref: ARN, file: 'db-password' }]],
    [`- ref: ${PARTIAL}`, [{ ref: PARTIAL, file: 'api-key' }]],
    [`- ref: ${SSM}`, [{ ref: SSM, file: 'config' }]],
    [`- {ref: ${ARN}, key: password, file: pw}`, [{ ref: ARN, key: 'password', file: 'pw' }]],
    [`- {ref: ${ARN}, explode: true, prefix: DB_}`, [{ ref: ARN, explode: true, prefix: 'DB_' }]],
    [`- {ref: ${ARN}, explode: true, file: db}`, [{ ref: ARN, explode: true, file: 'db' }]],
    [`- {ref: ${ARN}, file: a, versionStage: AWSPREVIOUS}`, [{ ref: ARN, file: 'a', versionStage: 'AWSPREVIOUS' }]],
    [`- {ref: ${ARN}, file: a, versionId: 01234567-89ab-cdef-0123-456789abcdef}`, [{ ref: ARN, file: 'a', versionId: '01234567-89ab-cdef-0123-456789abcdef' }]],
    [`- {ref: ${ARN}, file: a, mode: "0400"}`, [{ ref: ARN, file: 'a', mode: 0o400 }]],
    [`- {ref: ${ARN}, file: a, mode: 0440}`, [{ ref: ARN, file: 'a', mode: 0o440 }]],
    [`- {ref: ${ARN}, file: a, mode: 0o440}`, [{ ref: ARN, file: 'a', mode: 0o440 }]],
    [`- {ref: ${ARN}, file: a, mode: 440}`, [{ ref: ARN, file: 'a', mode: 0o440 }]],
    [`- {ref: ${ARN}, file: .env, format: env}`, [{ ref: ARN, file: '.env', format: 'env' }]],
    [`- {ref: ${ARN}, key: /db/hosts/0, file: host}`, [{ ref: ARN, key: '/db/hosts/0', file: 'host' }]],
    [`- {ref: ${ARN}, key: "/a~1b/c~0d", file: x}`, [{ ref: ARN, key: '/a~1b/c~0d', file: 'x' }]],
    [
      `- ref: ${ARN}\n  file: db.url\n  template: "postgres://{{ username }}:{{ password }}@{{host}}:{{ port }}/{{ /dbname }}"`,
      [{ ref: ARN, file: 'db.url', template: 'postgres://{{ username }}:{{ password }}@{{host}}:{{ port }}/{{ /dbname }}' }],
    ],
    [`- {ref: ${ARN}, file: u, template: "{{ a.b.0 }}", format: raw}`, [{ ref: ARN, file: 'u', template: '{{ a.b.0 }}', format: 'raw' }]],
    ['- ref: prod/app/*', [{ ref: 'prod/app/*', file: 'app' }]],
    ['- {ref: prod/app/*, file: conf}', [{ ref: 'prod/app/*', file: 'conf' }]],
    [`- {ref: "arn:aws:ssm:us-east-1:123456789012:parameter/app/config/*", key: /a, mode: "0400"}`, [{ ref: 'arn:aws:ssm:us-east-1:123456789012:parameter/app/config/*', file: 'config', key: '/a', mode: 0o400 }]],
  ])('%s', (value, items) => {
    expect(ok({ [k('secrets')]: value }).items).toEqual(items);
  });

  it.each([
    ['not: a list', 'must be a YAML or JSON list'],
    ['[]', 'at least one secret'],
    ['- [unclosed', 'is not valid YAML or JSON'],
    ['- just-a-string', 'entry 1 must be a mapping'],
    ['- file: x', 'entry 1: ref is required'],
    [`- {ref: ${ARN}, file: ../x}`, 'must be a relative path inside the mount'],
    [`- {ref: ${ARN}, file: /etc/x}`, 'must be a relative path inside the mount'],
    [`- {ref: ${ARN}, file: x, fiel: y}`, 'unknown field "fiel" (did you mean "file"?)'],
    [`- {ref: ${ARN}, file: x, format: xml}`, 'format must be one of raw, json, env'],
    [`- {ref: ${ARN}, explode: true, key: k}`, 'key and explode are mutually exclusive'],
    [`- {ref: ${ARN}, file: x, prefix: p}`, 'prefix only applies with explode'],
    [`- {ref: ${ARN}, explode: "yes"}`, 'explode must be true or false'],
    [`- {ref: ${ARN}, explode: true, format: env}`, 'format env writes one file'],
    [`- {ref: ${ARN}, file: x, versionStage: A, versionId: 01234567-89ab-cdef-0123-456789abcdef}`, 'mutually exclusive'],
    [`- {ref: ${SSM}, file: x, versionStage: AWSCURRENT}`, 'not SSM parameters'],
    [`- {ref: ${ARN}, file: x, mode: "0777"}`, 'mode'],
    [`- {ref: ${ARN}, file: x, mode: 0x1F}`, 'entry 1: mode "0x1F" is not a file mode'],
    [`- {ref: ${ARN}, file: a}\n- {ref: ${ARN}, file: a}`, 'entry 2: writes file "a", which secrets.k8s.aws/secrets entry 1 writes too'],
    [`- {ref: ${ARN}, file: a}\n- {ref: ${ARN}, file: a/b}`, 'is also a directory of "a/b"'],
    [`- {ref: ${ARN}, file: ..data}`, 'secrets.k8s.aws/secrets: entry 1: file "..data" is reserved: names starting with ".." are the secrets volume\'s own'],
    [`- {ref: ${ARN}, file: db/..2026_x}`, 'entry 1: file "db/..2026_x" is reserved'],
    ['- {ref: "arn:aws:secretsmanager:us-east-1:123456789012:secret:"}', 'entry 1: reference'],
    ['a: &a [1]\nb: *a\nc: {ref: x, ref: y}', 'not valid YAML'],
    [`- {ref: ${ARN}, file: x, key: /a~2b}`, 'entry 1: key: JSON Pointer "/a~2b" has a "~" not followed by 0 or 1'],
    [`- {ref: ${ARN}, file: x, template: "{{ host }"}`, 'entry 1: template has a "{{" at character 1 that no "}}" closes'],
    [`- {ref: ${ARN}, file: x, template: "a {{ }} b"}`, 'entry 1: template has an empty placeholder "{{ }}"'],
    [`- {ref: ${ARN}, file: x, template: "{{#users}}x{{/users}}"}`, 'entry 1: template placeholder "{{#users}}" is not a path: templates have no sections'],
    [`- {ref: ${ARN}, file: x, template: "{{{ password }}}"}`, 'placeholder "{{{ password }}" is not a path'],
    [`- {ref: ${ARN}, file: x, template: "{{ user name }}"}`, 'entry 1: template placeholder "{{ user name }}": "user name" is not a path'],
    [`- {ref: ${ARN}, file: x, template: "{{ /a~9 }}"}`, 'has a "~" not followed by 0 or 1'],
    [`- {ref: ${ARN}, file: x, template: "no placeholder"}`, 'entry 1: template has no {{ path }} placeholder'],
    [`- {ref: ${ARN}, file: x, template: "{{ a }}", key: a}`, 'entry 1: template and key are mutually exclusive'],
    [`- {ref: ${ARN}, file: x, template: "{{ a }}", format: env}`, 'entry 1: template and format are mutually exclusive'],
    [`- {ref: ${ARN}, explode: true, template: "{{ a }}"}`, 'entry 1: template and explode are mutually exclusive'],
    [`- {ref: ${ARN}, file: x, template: "${'{{ a }}'.repeat(3000)}"}`, 'entry 1: template is 21000 characters long, over the maximum of 16384'],
    ['- {ref: prod/app/*, explode: true}', 'entry 1: explode does not apply to a whole path'],
    ['- {ref: prod/app/*, file: x, versionStage: AWSPREVIOUS}', 'entry 1: versionStage and versionId do not apply to a whole path'],
    ['- {ref: /*, file: x}', 'entry 1: whole path "/*" names no prefix'],
    ['- {ref: "arn:aws:ssm:us-east-1:123456789012:parameter/*", file: x}', 'names no parameter path'],
    ['- {ref: "prod/a b/*", file: x}', 'entry 1: whole path "prod/a b/*" is neither an ARN nor a valid secret name'],
    [`- {ref: prod/app/*, file: a}\n- {ref: ${ARN}, file: a}`, 'file "a" is also the directory secrets.k8s.aws/secrets entry 1 explodes into'],
  ])('%s is refused: %s', (value, message) => {
    expect(bad({ [k('secrets')]: value }).join('\n')).toContain(message);
  });

  it('refuses whole paths with failover-region, naming both', () => {
    expect(bad({ [k('secrets')]: '- ref: prod/app/*', [k('region')]: 'us-east-1', [k('failover-region')]: 'us-east-2' })).toEqual([
      `${k('failover-region')}: does not apply to whole-path references (ref ending in "/*") in ${k('secrets')}: a path is listed in one region`,
    ]);
  });

  it('reports every bad entry', () => {
    const [msg] = bad({ [k('secrets')]: '- {file: a}\n- {ref: x, file: ../b}' });
    expect(msg).toContain('entry 1: ref is required');
    expect(msg).toContain('entry 2: file "../b"');
  });
});

describe('fromSecret entries (write-through)', () => {
  const STORE = { ...DEFAULTS, store: { cluster: 'prod-eu1', prefix: 'k8s' }, namespace: 'payments' };
  const parse = (value: string, defaults: Parameters<typeof parseAnnotations>[1] = STORE) => parseAnnotations({ [k('secrets')]: value }, defaults);

  it.each([
    ['- fromSecret: db-creds', [{ ref: 'k8s/prod-eu1/payments/db-creds', explode: true, file: 'db-creds' }]],
    ['- {fromSecret: db-creds, file: db, mode: "0400"}', [{ ref: 'k8s/prod-eu1/payments/db-creds', explode: true, file: 'db', mode: 0o400 }]],
    ['- {fromSecret: db-creds, key: password}', [{ ref: 'k8s/prod-eu1/payments/db-creds', key: 'password', file: 'password' }]],
    ['- {fromSecret: db-creds, key: password, file: pw}', [{ ref: 'k8s/prod-eu1/payments/db-creds', key: 'password', file: 'pw' }]],
    ['- {fromSecret: db-creds, format: env, file: db.env}', [{ ref: 'k8s/prod-eu1/payments/db-creds', format: 'env', file: 'db.env' }]],
    ['- {fromSecret: db-creds, explode: false}', [{ ref: 'k8s/prod-eu1/payments/db-creds', file: 'db-creds' }]],
    ['- {fromSecret: db-creds, prefix: DB_}', [{ ref: 'k8s/prod-eu1/payments/db-creds', explode: true, file: 'db-creds', prefix: 'DB_' }]],
  ])('%s resolves in the pod\'s namespace', (value, items) => {
    const r = parse(value);
    if ('problems' in r) throw new Error(JSON.stringify(r.problems));
    expect(r.request.items).toEqual(items);
  });

  it('reads in the store\'s region, and refuses a pod region that differs', () => {
    const withRegion = { ...STORE, store: { ...STORE.store, region: 'eu-west-1' } };
    const r = parse('- fromSecret: db-creds', withRegion);
    expect('request' in r && r.request.region).toBe('eu-west-1');
    const clash = parseAnnotations({ [k('secrets')]: '- fromSecret: db-creds', [k('region')]: 'us-east-1' }, withRegion);
    expect('problems' in clash && clash.problems.map((p) => p.message).join()).toContain('fromSecret entries are kept in "eu-west-1"');
  });

  it.each([
    ['- {fromSecret: db, ref: x}', STORE, 'ref and fromSecret are mutually exclusive'],
    ['- fromSecret: Not_A_Name', STORE, 'is not a Secret name'],
    ['- fromSecret: db', DEFAULTS, 'needs the webhook setting WRITE_THROUGH_CLUSTER'],
    ['- fromSecret: db', { ...DEFAULTS, store: STORE.store }, "needs the pod's namespace"],
    ['- {fromSecret: db, explode: true, key: k}', STORE, 'key and explode are mutually exclusive'],
  ])('%s is refused: %s', (value, defaults, message) => {
    const r = parse(value, defaults);
    expect('problems' in r && r.problems.map((p) => p.message).join()).toContain(message);
  });
});

describe('should-inject', () => {
  it.each([
    [{ [k('sidecarInjectorWebhook')]: 'enabled', [k('secret-arn')]: ARN }, true],
    [{ [k('secret-arn')]: ARN }, true],
    [{ [k('secret.a')]: ARN }, true],
    [{ [k('secrets')]: 'garbage' }, true],
    [{ [k('sidecarInjectorWebhook')]: 'disabled', [k('secret-arn')]: 'garbage' }, false],
    [{ [k('sidecarInjectorWebhook')]: 'False', [k('secret-arn')]: ARN }, false],
    [{ [k('sidecarInjectorWebhook')]: 'off', [k('secret-arn')]: ARN }, false],
    [{ [k('sidecarInjectorWebhook')]: 'true', [k('secret-arn')]: ARN }, true],
    [{ [k('sidecarInjectorWebhook')]: 'Enabled', [k('secret-arn')]: ARN }, true],
    [{ [k('status')]: 'injected', [k('secret-arn')]: ARN }, false],
    [{}, false],
    [{ 'other.io/x': 'y' }, false],
  ])('%j -> %s', (annotations, inject) => {
    expect(shouldInject(annotations).inject).toBe(inject);
  });

  it.each([
    [{ [k('sidecarInjectorWebhook')]: 'enabled' }, 'names no secret'],
    [{ [k('sidecarInjectorWebhook')]: 'yes' }, 'names no secret'],
    [{ [k('sidecarInjectorWebhook')]: 'maybe' }, 'must be "enabled" or "disabled"'],
    [{ [k('status')]: 'pending', [k('secret-arn')]: ARN }, 'set by the webhook only'],
  ])('%j is denied', (annotations, message) => {
    const d = shouldInject(annotations);
    expect(d.inject).toBe(false);
    if (d.inject || d.outcome !== 'denied') throw new Error('expected a denial');
    expect(d.problems[0]!.message).toContain(message);
  });

  it('warns about options without a secret', () => {
    const d = shouldInject({ [k('region')]: 'us-east-1' });
    expect(d).toMatchObject({ inject: false, outcome: 'skipped' });
    expect(d.warnings.join()).toContain('names no secret');
  });
});

describe('unknown keys', () => {
  it.each([
    ['secret_arn', 'secret-arn'],
    ['secretArn', 'secret-arn'],
    ['mountPath', 'mount-path'],
    ['mount_path', 'mount-path'],
    ['Region', 'region'],
    ['container', 'containers'],
    ['roleArn', 'role-arn'],
    ['secrets.db', 'secret.db'],
    ['secret_db', 'secret.db'],
    ['sidecarinjectorwebhook', 'sidecarInjectorWebhook'],
  ])('%s -> did you mean %s', (name, expected) => {
    expect(suggestKey(name)).toBe(expected);
  });

  it.each(['completely-different', 'xyz'])('%s has no suggestion', (name) => {
    expect(suggestKey(name)).toBeUndefined();
  });

  it('warns with the full key, and about near-miss prefixes', () => {
    expect(unknownKeyWarnings({ [k('mountPath')]: '/x', 'secret.k8s.aws/secret-arn': ARN, 'example.com/x': 'y' })).toEqual([
      'annotation secret.k8s.aws/secret-arn is ignored; did you mean the prefix secrets.k8s.aws/?',
      'unknown annotation secrets.k8s.aws/mountPath is ignored; did you mean secrets.k8s.aws/mount-path?',
    ]);
  });
});

describe('durations', () => {
  it.each([
    ['30s', 30],
    ['5m', 300],
    ['1h', 3600],
    ['1h1m1s', 3661],
    ['', undefined],
    ['1d', undefined],
    ['-5s', undefined],
    ['1.5h', undefined],
  ])('%s -> %s', (v, s) => expect(parseDuration(v)).toBe(s));
});

describe('the full form and the process', () => {
  it('writes nothing of an annotation to the process warnings (stderr): YAML warnings stay in the parser', () => {
    const spy = vi.spyOn(process, 'emitWarning');
    try {
      const r = ok({ [k('secrets')]: `- ref: !custom "${ARN}"\n  file: db` });
      expect(r.items).toEqual([{ ref: ARN, file: 'db' }]);
      expect(spy).not.toHaveBeenCalled();
    } finally {
      spy.mockRestore();
    }
  });
});
