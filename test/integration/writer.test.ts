// The write-through writer's handler against the AWS API emulator: what it writes, the patch it
// answers (no value left in the object), dry runs, refusals, DELETE with each policy.

import { CreateSecretCommand, DescribeSecretCommand, GetSecretValueCommand, ListSecretVersionIdsCommand } from '@aws-sdk/client-secrets-manager';
import jsonpatch from 'fast-json-patch';
import { describe, expect, it } from 'vitest';
import { writerHandler, type WriterConfig } from '../../store/review.js';
import { DEFAULT_MUTATION_CONFIG } from '../../webhook/types.js';
import type { ReviewResult } from '../../webhook/types.js';
import { integrationContext, seedClients, unique } from './context.js';

const { ctx, skip } = integrationContext();

const SECRET = { group: '', version: 'v1', kind: 'Secret' };
const PLAIN = 'W0rd-0f-p4ss';
const b64 = (s: string) => Buffer.from(s).toString('base64');

function secret(name: string, extra: Record<string, unknown> = {}, labels: Record<string, string> = { 'secrets.k8s.aws/write-through': 'true' }) {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name,
      namespace: 'team-a',
      labels,
      annotations: { 'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify({ apiVersion: 'v1', kind: 'Secret', data: { password: b64(PLAIN) }, metadata: { name } }) },
    },
    type: 'Opaque',
    data: { password: b64(PLAIN) },
    stringData: { user: 'u53r-x' },
    ...extra,
  };
}

function review(operation: string, object: unknown, oldObject?: unknown, dryRun = false) {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: { uid: unique('uid'), kind: SECRET, operation, namespace: 'team-a', dryRun, object: operation === 'DELETE' ? null : object, oldObject: oldObject ?? null },
  };
}

function applied(result: ReviewResult, object: unknown): Record<string, any> {
  if (result.kind !== 'review') throw new Error(result.message);
  expect(result.response.response.allowed, result.response.response.status?.message).toBe(true);
  const patch = result.response.response.patch;
  if (patch === undefined) return object as Record<string, any>;
  return jsonpatch.applyPatch(structuredClone(object), JSON.parse(Buffer.from(patch, 'base64').toString())).newDocument as Record<string, any>;
}

function denial(result: ReviewResult): string {
  if (result.kind !== 'review') throw new Error(result.message);
  expect(result.response.response.allowed).toBe(false);
  return result.response.response.status!.message;
}

describe.skipIf(skip)('write-through writer (handler against the emulator)', () => {
  const sm = () => seedClients(ctx!.awsEndpoint).secrets;
  const handler = (over: Partial<WriterConfig> = {}) => {
    const config: WriterConfig = { cluster: unique('c'), prefix: 'k8s', deletionPolicy: 'Retain', recoveryDays: 7, deadlineMs: 8_000, ...over };
    const h = writerHandler(config, { sm: sm() });
    return { config, run: (body: unknown) => h(body, DEFAULT_MUTATION_CONFIG) };
  };

  it('writes a labelled Secret and answers a patch leaving no value anywhere in the object', async () => {
    const w = handler();
    const obj = secret('db');
    const stored = applied(await w.run(review('CREATE', obj)), obj);
    expect(stored.data).toBeUndefined();
    expect(stored.stringData).toBeUndefined();
    const text = JSON.stringify(stored);
    for (const v of [PLAIN, b64(PLAIN), 'u53r-x']) expect(text).not.toContain(v);
    const name = `k8s/${w.config.cluster}/team-a/db`;
    expect(stored.metadata.annotations['secrets.k8s.aws/stored-in']).toContain(`:secret:${name}-`);
    expect(JSON.parse(stored.metadata.annotations['kubectl.kubernetes.io/last-applied-configuration'])).toEqual({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'db' } });
    const value = await sm().send(new GetSecretValueCommand({ SecretId: name }));
    expect(JSON.parse(value.SecretString!)).toEqual({ password: PLAIN, user: 'u53r-x' });
    expect(value.VersionId).toBe(stored.metadata.annotations['secrets.k8s.aws/version-id']);

    // A re-apply of the same manifest: no new version, the same annotations, so no change at all.
    const reapplied = { ...obj, metadata: { ...obj.metadata, annotations: stored.metadata.annotations } };
    const again = applied(await w.run(review('UPDATE', reapplied, stored)), reapplied);
    expect(again.metadata.annotations).toEqual(stored.metadata.annotations);
    // A metadata-only update (kubectl label): nothing written, the references kept.
    const relabelled = { ...stored, metadata: { ...stored.metadata, labels: { ...stored.metadata.labels, tier: 'db' }, annotations: {} } };
    expect(applied(await w.run(review('UPDATE', relabelled, stored)), relabelled).metadata.annotations['secrets.k8s.aws/version-id']).toBe(value.VersionId);
    // An update of the value: exactly one new version.
    const changed = secret('db', { stringData: { user: 'other' } });
    const updated = applied(await w.run(review('UPDATE', changed, stored)), changed);
    expect(updated.metadata.annotations['secrets.k8s.aws/version-id']).not.toBe(value.VersionId);
    expect((await sm().send(new ListSecretVersionIdsCommand({ SecretId: name, IncludeDeprecated: true }))).Versions).toHaveLength(2);
  });

  it('answers a dry run with the same shape of patch and calls nothing', async () => {
    const w = handler();
    const obj = secret('dry');
    const r = applied(await w.run(review('CREATE', obj, undefined, true)), obj);
    expect(r.data).toBeUndefined();
    expect(r.metadata.annotations['secrets.k8s.aws/stored-in']).toBe(`k8s/${w.config.cluster}/team-a/dry`);
    const err = await sm().send(new DescribeSecretCommand({ SecretId: `k8s/${w.config.cluster}/team-a/dry` })).catch((e: Error) => e);
    expect((err as Error).name).toBe('ResourceNotFoundException');
  });

  it.each([
    ['generateName', { metadata: { generateName: 'db-', namespace: 'team-a', labels: { 'secrets.k8s.aws/write-through': 'true' } } }, 'metadata.generateName: a Secret written through needs metadata.name'],
    ['a type other than Opaque', { type: 'kubernetes.io/basic-auth' }, 'type: is "kubernetes.io/basic-auth": only Opaque Secrets'],
    ['a binary value', { data: { blob: Buffer.from([0xff, 0xfe]).toString('base64') } }, 'data.blob: is not UTF-8 text'],
    ['a value over 64 KiB', { data: undefined, stringData: { big: 'x'.repeat(70_000) } }, 'Secrets Manager holds at most 65536 (64 KiB)'],
  ])('refuses %s, naming the reason and no value', async (_, extra, message) => {
    const w = handler();
    const m = denial(await w.run(review('CREATE', secret('refused', extra))));
    expect(m).toContain(message);
    expect(m).not.toContain(PLAIN);
  });

  it('leaves unlabelled Secrets and excluded namespaces alone', async () => {
    const w = handler({ namespace: 'team-a' });
    const r = await w.run(review('CREATE', secret('x')));
    expect(r.kind === 'review' && r.response.response).toEqual({ uid: expect.any(String), allowed: true });
    const plain = await handler().run(review('CREATE', secret('y', {}, {})));
    expect(plain.kind === 'review' && plain.response.response.patch).toBeUndefined();
  });

  it('refuses to drop the label from a Secret that holds data, and lets it go from one that holds none', async () => {
    const w = handler();
    const obj = secret('lbl');
    const stored = applied(await w.run(review('CREATE', obj)), obj);
    const unlabelledWithData = { ...obj, metadata: { ...obj.metadata, labels: {} } };
    expect(denial(await w.run(review('UPDATE', unlabelledWithData, stored)))).toContain('would then be stored in etcd');
    const unlabelled = { ...stored, metadata: { ...stored.metadata, labels: {} } };
    const r = await w.run(review('UPDATE', unlabelled, stored));
    expect(r.kind === 'review' && r.response.response.warnings?.[0]).toContain('no longer written through');
  });

  it('names the AWS error and never overwrites a secret it does not own', async () => {
    const w = handler();
    await sm().send(new CreateSecretCommand({ Name: `k8s/${w.config.cluster}/team-a/taken`, SecretString: 'theirs' }));
    expect(denial(await w.run(review('CREATE', secret('taken'))))).toContain('refusing to write Secrets Manager secret');
  });

  it('DELETE: Retain keeps the secret; Delete schedules its deletion and a later CREATE restores it', async () => {
    const retain = handler();
    const obj = secret('keep');
    const stored = applied(await retain.run(review('CREATE', obj)), obj);
    await retain.run(review('DELETE', null, stored));
    expect((await sm().send(new DescribeSecretCommand({ SecretId: `k8s/${retain.config.cluster}/team-a/keep` }))).DeletedDate).toBeUndefined();

    const del = handler({ deletionPolicy: 'Delete' });
    const s2 = applied(await del.run(review('CREATE', secret('gone'))), secret('gone'));
    const name = `k8s/${del.config.cluster}/team-a/gone`;
    const dryDelete = await del.run(review('DELETE', null, s2, true));
    expect(dryDelete.kind === 'review' && dryDelete.response.response.allowed).toBe(true);
    expect((await sm().send(new DescribeSecretCommand({ SecretId: name }))).DeletedDate).toBeUndefined();
    const r = await del.run(review('DELETE', null, s2));
    expect(r.kind === 'review' && r.response.response.warnings?.[0]).toContain('scheduled for deletion in 7 days');
    expect((await sm().send(new DescribeSecretCommand({ SecretId: name }))).DeletedDate).toBeDefined();
    const back = await del.run(review('CREATE', secret('gone')));
    expect(back.kind === 'review' && back.response.response.warnings?.[0]).toContain('is restored');
    expect((await sm().send(new DescribeSecretCommand({ SecretId: name }))).DeletedDate).toBeUndefined();
  });
});
