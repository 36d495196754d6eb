// The golden fixtures as the e2e suite replays them through the real apiserver, and the fields
// the apiserver sets on its own for each create, put aside before two objects are compared.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Cluster } from '../helpers/cluster.js';
import { REPO_ROOT } from '../helpers/tools.js';

const FIXTURES = join(REPO_ROOT, 'test', 'fixtures');

export interface Fixture {
  name: string;
  object: Record<string, any>;
  allowed: boolean;
  message?: string;
  warnings: string[];
  pod?: Record<string, any>;
}

export function loadFixtures(): Fixture[] {
  if (!existsSync(FIXTURES)) return [];
  return readdirSync(FIXTURES, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(FIXTURES, d.name, 'request.json')))
    .map((d) => {
      const dir = join(FIXTURES, d.name);
      const request = JSON.parse(readFileSync(join(dir, 'request.json'), 'utf8')).request;
      const response = JSON.parse(readFileSync(join(dir, 'response.json'), 'utf8')).response;
      const podFile = join(dir, 'pod.json');
      return {
        name: d.name,
        object: request.object,
        allowed: response.allowed,
        message: response.status?.message,
        warnings: response.warnings ?? [],
        pod: existsSync(podFile) ? JSON.parse(readFileSync(podFile, 'utf8')) : undefined,
      };
    });
}

const GENERATED_TOKEN_VOLUME = /^kube-api-access-[a-z0-9]{5}$/;

/**
 * The object minus what the apiserver sets on its own for each create: uid, timestamps, a name
 * generated from generateName, and the ServiceAccount admission plugin's kube-api-access-<random>
 * volume and mounts (added before webhooks run, so their position relative to ours depends on the
 * replay, not on us).
 */
export function normalise(obj: any): any {
  const o = structuredClone(obj);
  delete o.status;
  for (const k of ['uid', 'creationTimestamp', 'resourceVersion', 'managedFields', 'generation']) delete o.metadata?.[k];
  // A name made from generateName differs on every create.
  if (o.metadata?.generateName) delete o.metadata.name;
  const spec = o.spec;
  if (!spec) return o;
  const ours = (n: string) => !GENERATED_TOKEN_VOLUME.test(n);
  if (spec.volumes) spec.volumes = spec.volumes.filter((v: any) => ours(v.name));
  for (const c of [...(spec.containers ?? []), ...(spec.initContainers ?? [])]) {
    if (c.volumeMounts) c.volumeMounts = c.volumeMounts.filter((m: any) => ours(m.name));
    if (c.volumeMounts?.length === 0) delete c.volumeMounts;
  }
  if (spec.volumes?.length === 0) delete spec.volumes;
  return o;
}


/** `kubectl create --dry-run=server` of the object in the namespace: what the apiserver would store, or why not. */
export async function createDryRun(cluster: Cluster, namespace: string, obj: any): Promise<{ code: number; object?: any; stderr: string }> {
  const body = structuredClone(obj);
  body.metadata = { ...body.metadata, namespace };
  const out = await cluster.kubectl(['create', '--dry-run=server', '-o', 'json', '-f', '-'], { input: JSON.stringify(body), allowFailure: true });
  return { code: out.code, stderr: out.stderr, object: out.code === 0 ? JSON.parse(out.stdout) : undefined };
}
