// The node suite's set-up: the e2e suite's control plane (plus kube-scheduler) and the AWS API
// emulator; both images built from the Dockerfile with buildah (a broken Dockerfile fails the
// run here, with buildah's output); a real node (containerd + runc + kubelet) with the images
// imported; and the webhook image running on that node as a host-network pod, registered with
// the apiserver, pointing the fetcher at the AWS front (test/helpers/aws-front.ts) with its
// endpoint and CA bundle settings. Every test file then creates ordinary workloads and reads what the kubelet and
// the containers report. Everything is stopped and cleaned up in the teardown, even when tests
// fail.
//
// In CI (CI=true) a missing part fails the run; elsewhere the suite skips with a message saying
// how to install it. Needs root (a kubelet and containerd do).

import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { TestProject } from 'vitest/node';
import { generateCertificates } from '../../certs/generate.js';
import { startControlPlane, type ClusterInfo, type ControlPlane } from '../helpers/cluster.js';
import { buildImages, NODE_IMAGES, nodeSuiteParts, type BuiltImages, type NodeSuiteParts } from '../helpers/images.js';
import { startMoto, type MotoServer } from '../helpers/moto.js';
import { startNode, type NodeInfo, type RunningNode } from '../helpers/node.js';
import { findTools, inCI, LOG_DIR } from '../helpers/tools.js';
import { startWebhookPod, type AwsFrontInfo } from './webhook-pod.js';

export interface NodeContext {
  cluster: ClusterInfo;
  /** http://127.0.0.1:<port> of moto, for the tests' own AWS calls. */
  awsEndpoint: string;
  node: NodeInfo;
  parts: NodeSuiteParts;
  images: typeof NODE_IMAGES;
  built: Omit<BuiltImages, 'archives' | 'timings'>;
  /** Where each file's AWS front listens (the node's bridge address) and what it serves with. */
  front: AwsFrontInfo;
  /** Set-up timings in ms, for the report. */
  timings: Record<string, number>;
}

declare module 'vitest' {
  export interface ProvidedContext {
    /** Present unless the suite is skipped. */
    node: NodeContext | null;
    /** Why the suite is skipped (outside CI, a part is missing). */
    nodeSkip: string;
  }
}

/** A port free on `address` a moment ago, and a certificate for that address. */
async function awsFrontInfo(address: string): Promise<AwsFrontInfo> {
  const port = await new Promise<number>((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, address, () => {
      const a = server.address();
      server.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
  const certs = generateCertificates({ ipAddresses: [address] });
  return { address, port, cert: certs.cert, key: certs.key, caCert: certs.caCert, caConfigMap: 'aws-ca' };
}

function skip(project: TestProject, message: string): () => Promise<void> {
  if (inCI()) throw new Error(message);
  console.warn(`node suite skipped: ${message}`);
  project.provide('node', null);
  project.provide('nodeSkip', message);
  return async () => undefined;
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const tools = findTools([
    'etcd',
    'kube-apiserver',
    'kube-controller-manager',
    'kube-scheduler',
    'kubelet',
    'kubectl',
    'moto_server',
    'containerd',
    'ctr',
    'runc',
    'buildah',
  ] as const);
  if (!tools.paths) return skip(project, `missing: ${tools.missing.join(', ')}; run \`npm run test:all\` (or \`bash test/setup/install.sh\`) as root`);
  const parts = nodeSuiteParts();
  if (!parts) return skip(project, 'the local base images are not built; run `bash test/setup/node-suite.sh` as root');
  if (process.getuid?.() !== 0) return skip(project, 'a kubelet and containerd need root');

  const timings: Record<string, number> = {};
  const t0 = Date.now();
  const scratch = mkdtempSync(join(tmpdir(), 'asi-images-'));
  mkdirSync(LOG_DIR, { recursive: true });
  const logDir = mkdtempSync(join(LOG_DIR, 'node-'));
  let moto: MotoServer | undefined;
  let plane: ControlPlane | undefined;
  let node: RunningNode | undefined;
  let stopWebhook: (() => Promise<void>) | undefined;
  let built: BuiltImages | undefined;
  let front: AwsFrontInfo | undefined;
  const teardown = async () => {
    await stopWebhook?.().catch(() => undefined);
    await node?.stop();
    await Promise.allSettled([plane?.stop(), moto?.stop()]);
    rmSync(scratch, { recursive: true, force: true });
  };
  try {
    const timed = <T>(name: string, p: Promise<T>) =>
      p.then((v) => {
        timings[name] = Date.now() - t0;
        return v;
      });
    const runId = randomBytes(4).toString('hex');
    const results = await Promise.allSettled([
      timed('moto', startMoto(tools.paths.moto_server)),
      timed('controlPlane', startControlPlane({ scheduler: true })),
      timed('images', buildImages(parts, scratch, runId)),
    ]);
    if (results[0].status === 'fulfilled') moto = results[0].value;
    if (results[1].status === 'fulfilled') plane = results[1].value;
    for (const r of results) if (r.status === 'rejected') throw r.reason;
    built = (results[2] as PromiseFulfilledResult<BuiltImages>).value;
    Object.assign(timings, built.timings);
    node = await timed('node', startNode(plane!, { archives: built.archives, pauseImage: NODE_IMAGES.pause, logDir }));
    // containerd has the images now; the tarballs only take space.
    rmSync(scratch, { recursive: true, force: true });
    front = await awsFrontInfo(node.gateway);
    stopWebhook = await timed('webhook', startWebhookPod(plane!, NODE_IMAGES, front));
  } catch (e) {
    await teardown();
    throw e;
  }
  const { kubectl: _k, helm: _h, stop: _s, kubeConfig: _c, ...cluster } = plane!;
  const { stop: _n, ...nodeInfo } = node!;
  const { archives: _a, timings: _t, ...images } = built!;
  console.log(`node suite: node ${nodeInfo.name} Ready, webhook pod serving (${JSON.stringify(timings)})`);
  project.provide('node', { cluster, awsEndpoint: moto!.endpoint, node: nodeInfo, parts, images: NODE_IMAGES, built: images, front: front!, timings });
  project.provide('nodeSkip', '');
  return teardown;
}
