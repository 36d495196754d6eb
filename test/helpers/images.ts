// Builds the project's two images from its own Dockerfile with buildah, as a release build does
// but from the local base images test/setup/node-suite.sh assembled (the Dockerfile takes its bases as
// build arguments), and writes them, with the busybox app and pause images, as docker-archive
// tarballs for containerd to import. The build stage's layers are cached in buildah's store
// (`--layers`), so only what changed since the last run is rebuilt.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCommand } from './cluster.js';
import { BIN_DIR, REPO_ROOT } from './tools.js';

/** What test/setup/node-suite.sh wrote to .cache/node-suite.json. */
export interface NodeSuiteParts {
  buildahStore: string;
  buildImage: string;
  runtimeImage: string;
  busyboxImage: string;
  pauseImage: string;
  nodeVersion: string;
}

export const NODE_SUITE_FILE = join(REPO_ROOT, '.cache', 'node-suite.json');

export function nodeSuiteParts(): NodeSuiteParts | undefined {
  if (!existsSync(NODE_SUITE_FILE)) return undefined;
  return JSON.parse(readFileSync(NODE_SUITE_FILE, 'utf8')) as NodeSuiteParts;
}

/** The names pods use (imagePullPolicy Never: containerd has them from the import). */
export const NODE_IMAGES = {
  fetcher: 'localhost/aws-secret-injector-fetcher:node-suite',
  webhook: 'localhost/aws-secret-injector:node-suite',
  busybox: 'localhost/busybox:node-suite',
  pause: 'localhost/pause:node-suite',
} as const;

export interface ImageConfig {
  /** sha256:<digest of the image config>, what the kubelet reports as a container's imageID. */
  id: string;
  entrypoint: string[];
  cmd: string[];
  user: string;
  env: string[];
}

export interface BuiltImages {
  /** docker-archive tarballs, one per image of NODE_IMAGES. */
  archives: string[];
  /** The config of each image built from the Dockerfile, as buildah recorded it. */
  config: { fetcher: ImageConfig; webhook: ImageConfig };
  /** The files under /app of each image built from the Dockerfile. */
  appFiles: { fetcher: string[]; webhook: string[] };
  timings: Record<string, number>;
}

function buildah(parts: NodeSuiteParts): (args: string[], timeoutMs?: number) => Promise<string> {
  const base = ['--root', join(parts.buildahStore, 'root'), '--runroot', join(parts.buildahStore, 'run'), '--storage-driver', 'overlay'];
  return async (args, timeoutMs = 120_000) =>
    (await runCommand(join(BIN_DIR, 'buildah'), [...base, ...args], process.env, { timeoutMs })).stdout;
}

/**
 * Builds both targets of the Dockerfile and writes every image the node suite runs into `outDir`.
 * A broken Dockerfile rejects with buildah's output.
 */
export async function buildImages(parts: NodeSuiteParts, outDir: string, runId: string): Promise<BuiltImages> {
  const b = buildah(parts);
  const timings: Record<string, number> = {};
  // Per-run tags: two runs on one machine share the store (and its layer cache), not their images.
  const tags = { fetcher: `localhost/asi-node-fetcher:${runId}`, webhook: `localhost/asi-node-webhook:${runId}` };
  const archives: string[] = [];
  try {
    for (const target of ['fetcher', 'webhook'] as const) {
      const t0 = Date.now();
      await b(
        [
          'bud',
          '--layers',
          '--pull-never',
          '--isolation',
          'chroot',
          '--build-arg',
          `BUILD_IMAGE=${parts.buildImage}`,
          '--build-arg',
          `RUNTIME_IMAGE=${parts.runtimeImage}`,
          '--target',
          target,
          '-t',
          tags[target],
          REPO_ROOT,
        ],
        // A cold build runs `npm ci` in the build stage.
        900_000,
      );
      timings[`build ${target}`] = Date.now() - t0;
    }
    const t1 = Date.now();
    const sources: Record<keyof typeof NODE_IMAGES, string> = {
      fetcher: tags.fetcher,
      webhook: tags.webhook,
      busybox: parts.busyboxImage,
      pause: parts.pauseImage,
    };
    for (const [key, source] of Object.entries(sources) as [keyof typeof NODE_IMAGES, string][]) {
      const archive = join(outDir, `${key}.tar`);
      await b(['push', '--quiet', source, `docker-archive:${archive}:${NODE_IMAGES[key]}`], 300_000);
      archives.push(archive);
    }
    timings.archives = Date.now() - t1;
    const inspect = async (tag: string): Promise<ImageConfig> => {
      const out = JSON.parse(await b(['inspect', '--type', 'image', tag])) as {
        FromImageID: string;
        OCIv1: { config: { Entrypoint?: string[]; Cmd?: string[]; User?: string; Env?: string[] } };
      };
      const c = out.OCIv1.config;
      return { id: `sha256:${out.FromImageID}`, entrypoint: c.Entrypoint ?? [], cmd: c.Cmd ?? [], user: c.User ?? '', env: c.Env ?? [] };
    };
    const listApp = async (tag: string): Promise<string[]> => {
      const ctr = (await b(['from', '--pull-never', '--quiet', tag])).trim();
      try {
        const mount = (await b(['mount', ctr])).trim();
        const out = await runCommand('find', ['.', '-type', 'f'], process.env, { cwd: join(mount, 'app') });
        return out.stdout
          .split('\n')
          .filter(Boolean)
          .map((f) => f.replace(/^\.\//, ''))
          .sort();
      } finally {
        await b(['umount', ctr]).catch(() => undefined);
        await b(['rm', ctr]).catch(() => undefined);
      }
    };
    return {
      archives,
      config: { fetcher: await inspect(tags.fetcher), webhook: await inspect(tags.webhook) },
      appFiles: { fetcher: await listApp(tags.fetcher), webhook: await listApp(tags.webhook) },
      timings,
    };
  } finally {
    // Untag only: the layers stay cached for the next run.
    for (const tag of Object.values(tags)) await b(['rmi', tag]).catch(() => undefined);
  }
}
