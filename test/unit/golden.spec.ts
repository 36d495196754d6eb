// Golden AdmissionReview fixtures (test/fixtures/<case>/): the request in, the whole response
// out, the patch decoded with its values, and the pod the apiserver ends up with. Then the
// invariants over every one of them. `UPDATE_GOLDEN=1 npx vitest run test/unit/golden.spec.ts`
// rewrites the expected files from the current code: read the diff before committing it.

import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import jsonpatch, { type Operation } from 'fast-json-patch';
import { describe, expect, it } from 'vitest';
import { parseSpec, SPEC_ENV } from '../../fetcher/spec.js';
import { expandLikeKubelet } from '../../webhook/kubelet-env.js';
import { review, reviewPod } from '../../webhook/review.js';
import { DEFAULT_MUTATION_CONFIG, type AdmissionReviewResponse } from '../../webhook/types.js';

const ROOT = new URL('../fixtures/', import.meta.url).pathname;
const UPDATE = process.env.UPDATE_GOLDEN === '1';

type Json = Record<string, any>;
const read = (dir: string, file: string): Json | undefined =>
  existsSync(join(ROOT, dir, file)) ? JSON.parse(readFileSync(join(ROOT, dir, file), 'utf8')) : undefined;
const write = (dir: string, file: string, value: unknown): void =>
  writeFileSync(join(ROOT, dir, file), `${JSON.stringify(value, null, 2)}\n`);

const cases = readdirSync(ROOT, { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(join(ROOT, d.name, 'request.json')))
  .map((d) => d.name)
  .sort();

function answer(body: unknown): AdmissionReviewResponse {
  const r = review(body, DEFAULT_MUTATION_CONFIG);
  if (r.kind !== 'review') throw new Error(`bad request: ${r.message}`);
  return r.response;
}
const decode = (res: AdmissionReviewResponse): Operation[] | undefined =>
  res.response.patch === undefined ? undefined : JSON.parse(Buffer.from(res.response.patch, 'base64').toString('utf8'));

function run(name: string) {
  const request = read(name, 'request.json')!;
  const response = answer(request);
  const patch = decode(response);
  const pod =
    request.request.kind.kind === 'Pod' && response.response.allowed
      ? jsonpatch.applyPatch(structuredClone(request.request.object), patch ?? [], true, false).newDocument
      : undefined;
  return { request, response, patch, pod };
}

it('there are fixtures', () => expect(cases.length).toBeGreaterThanOrEqual(16));

describe.each(cases)('fixture %s', (name) => {
  const { request, response, patch, pod } = run(name);

  if (UPDATE) {
    write(name, 'response.json', response);
    if (patch) write(name, 'patch.json', patch);
    if (pod) write(name, 'pod.json', pod);
  }

  it('answers exactly as recorded', () => {
    expect(response).toEqual(read(name, 'response.json'));
    expect(patch).toEqual(read(name, 'patch.json'));
    expect(pod).toEqual(read(name, 'pod.json'));
  });

  it('echoes the uid', () => expect(response.response.uid).toBe(request.request.uid));

  it('patches the request object into exactly the pod the webhook built', () => {
    if (!patch) return;
    const outcome = reviewPod(request.request.object, DEFAULT_MUTATION_CONFIG);
    expect(outcome.outcome).toBe('injected');
    if (outcome.outcome === 'injected') expect(pod).toEqual(outcome.pod);
  });

  it('never removes anything', () => {
    for (const op of patch ?? []) expect(['add', 'replace'], JSON.stringify(op)).toContain(op.op);
  });

  it('patches the request object cleanly', () => {
    if (!patch) return;
    expect(jsonpatch.validate(patch, structuredClone(request.request.object))).toBeUndefined();
  });

  it('leaves its own output alone (second pass is empty)', () => {
    if (!pod) return;
    const again = answer({ ...request, request: { ...request.request, object: pod } });
    expect(again.response.allowed).toBe(true);
    expect(again.response.patch).toBeUndefined();
  });

  it('hands the fetcher a spec it accepts', () => {
    const init = pod?.spec?.initContainers?.[0];
    if (!patch || !init) return;
    const spec = init.env.find((e: Json) => e.name === SPEC_ENV).value;
    expect(parseSpec(expandLikeKubelet(spec))).toHaveProperty('spec');
  });
});
