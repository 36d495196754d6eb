// A real node joined to the suite's control plane: containerd (its own config, root, state and
// socket in a scratch directory), runc, a CNI bridge of its own, and a kubelet registered through
// the admin kubeconfig. Needs root, as a node does. stop() leaves the machine as it found it even
// after failures: pods' containers and sandboxes are removed, the processes stopped, every mount
// under the scratch directory (the kubelet's memory emptyDirs, containerd's snapshots) and the
// sandboxes' network namespaces unmounted, the bridge deleted and the directory removed.

import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { connectCluster, runCommand, type ClusterInfo } from './cluster.js';
import { spawnGuarded, stopGuarded } from './guard.js';
import { freePort } from './moto.js';
import { BIN_DIR } from './tools.js';

/** What test files need to know about the node (serialisable). */
export interface NodeInfo {
  /** The Node object's name. */
  name: string;
  /**
   * The bridge's own address and the node's InternalIP: pods on the pod network reach the host
   * there, host-network pods too (it is their pod IP).
   */
  gateway: string;
  /** containerd's socket. */
  socket: string;
  /** Where the kubelet writes container logs (its podLogsDir). */
  podLogsDir: string;
  logDir: string;
}

export interface RunningNode extends NodeInfo {
  /** Stops everything startNode started and removes its traces; safe to call after a partial start. */
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const NETNS_DIR = '/var/run/netns';

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function tail(file: string, chars = 3_000): string {
  try {
    return readFileSync(file, 'utf8').slice(-chars);
  } catch {
    return '(no log)';
  }
}

/** Mount points at or under `dir`, deepest first (/proc/self/mountinfo escapes spaces as \040). */
function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((p): p is string => !!p)
    .map((p) => p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((p) => p === dir || p.startsWith(`${dir}/`))
    .sort((a, b) => b.split('/').length - a.split('/').length);
}

async function unmountAll(dir: string): Promise<void> {
  for (let pass = 0; pass < 3; pass++) {
    const mounts = mountsUnder(dir);
    if (mounts.length === 0) return;
    for (const m of mounts) {
      const r = await runCommand('umount', [m], process.env, { allowFailure: true });
      if (r.code !== 0) await runCommand('umount', ['-l', m], process.env, { allowFailure: true });
    }
  }
}

function listNetns(): Set<string> {
  try {
    return new Set(readdirSync(NETNS_DIR));
  } catch {
    return new Set();
  }
}

/** A /24 in 10.0.0.0/8 that no interface or route of this machine uses. */
async function freeSubnet(): Promise<string> {
  const used = (await runCommand('ip', ['-4', 'route', 'show', 'table', 'all'], process.env)).stdout;
  for (let i = 0; i < 50; i++) {
    const b = randomBytes(2);
    const prefix = `10.${200 + (b[0]! % 50)}.${b[1]}`;
    if (!used.includes(`${prefix}.`)) return prefix;
  }
  throw new Error('found no free 10.x.y.0/24 for the node bridge');
}

/**
 * What outlives containerd when tasks were left (its shims and their containers): the containers
 * in this node's runc root are killed and deleted, the shims that name its socket killed.
 */
async function killLeftovers(dir: string): Promise<void> {
  const runcRoot = join(dir, 'runc', 'k8s.io');
  if (existsSync(runcRoot)) {
    const runc = (args: string[]) => runCommand(join(BIN_DIR, 'runc'), ['--root', runcRoot, ...args], process.env, { allowFailure: true });
    for (const id of readdirSync(runcRoot)) {
      await runc(['kill', id, 'KILL']);
      await runc(['delete', '--force', id]);
    }
  }
  const socket = join(dir, 'containerd.sock');
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmdline.includes('containerd-shim') && cmdline.includes(socket)) process.kill(Number(pid), 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
}

interface Owner {
  pid: number;
  bridge: string;
}

/**
 * Cleans up after node-suite runs that were killed before their teardown (their guards stopped
 * kubelet and containerd, but containers, mounts and bridges stay): every scratch directory whose
 * owning process is gone.
 */
async function sweepAbandoned(): Promise<void> {
  for (const entry of readdirSync(tmpdir())) {
    if (!entry.startsWith('asi-node-')) continue;
    const dir = join(tmpdir(), entry);
    let owner: Owner;
    try {
      owner = JSON.parse(readFileSync(join(dir, 'owner.json'), 'utf8')) as Owner;
    } catch {
      continue;
    }
    try {
      process.kill(owner.pid, 0);
      continue; // a run in progress
    } catch {
      // its owner is gone
    }
    await killLeftovers(dir);
    await unmountAll(dir);
    await runCommand('ip', ['link', 'delete', owner.bridge], process.env, { allowFailure: true });
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface StartNodeOptions {
  /** docker-archive tarballs imported into containerd's k8s.io namespace before the kubelet starts. */
  archives: string[];
  /** The image containerd runs as every pod's sandbox. */
  pauseImage: string;
  logDir: string;
  timeoutMs?: number;
}

export async function startNode(cluster: ClusterInfo, opts: StartNodeOptions): Promise<RunningNode> {
  const timeoutMs = opts.timeoutMs ?? 120_000;
  await sweepAbandoned();
  const id = randomBytes(3).toString('hex');
  const name = `node-${id}`;
  const dir = mkdtempSync(join(tmpdir(), 'asi-node-'));
  const socket = join(dir, 'containerd.sock');
  const podLogsDir = join(dir, 'pod-logs');
  const bridge = `asi${id}`;
  const netnsBefore = listNetns();
  const procs: { name: string; child: ChildProcess; logFile: string }[] = [];
  let bridgeMade = false;
  let gateway = '';

  const ctr = (args: string[], timeoutMs2 = 120_000) =>
    runCommand(join(BIN_DIR, 'ctr'), ['--address', socket, '--namespace', 'k8s.io', ...args], process.env, {
      timeoutMs: timeoutMs2,
      allowFailure: true,
    });

  const start = (proc: string, file: string, args: string[]) => {
    const logFile = join(opts.logDir, `${proc}.log`);
    const fd = openSync(logFile, 'w');
    const child = spawnGuarded(file, args, { out: fd, cwd: dir });
    closeSync(fd);
    child.on('error', () => undefined);
    procs.push({ name: proc, child, logFile });
  };

  const waitFor = async (what: string, check: () => Promise<boolean>) => {
    const started = Date.now();
    while (Date.now() - started < timeoutMs) {
      const dead = procs.find((p) => exited(p.child));
      if (dead) throw new Error(`${dead.name} exited while waiting for ${what}; log ${dead.logFile}:\n${tail(dead.logFile)}`);
      if (await check().catch(() => false)) return;
      await sleep(250);
    }
    const last = procs[procs.length - 1];
    throw new Error(`${what} not reached within ${timeoutMs} ms${last ? `; ${last.name} log ${last.logFile}:\n${tail(last.logFile)}` : ''}`);
  };

  const stop = async () => {
    const kubelet = procs.find((p) => p.name === 'kubelet');
    const containerd = procs.find((p) => p.name === 'containerd');
    // Pods first, through the kubelet: it stops their containers and tears their sandboxes down.
    if (kubelet && !exited(kubelet.child)) {
      const core = connectCluster(cluster).kubeConfig.makeApiClient(CoreV1Api);
      const pods = await core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${name}` }).catch(() => undefined);
      for (const pod of pods?.items ?? []) {
        await core
          .deleteNamespacedPod({ name: pod.metadata!.name!, namespace: pod.metadata!.namespace!, gracePeriodSeconds: 0 })
          .catch(() => undefined);
      }
      const started = Date.now();
      while (Date.now() - started < 30_000) {
        const left = await ctr(['containers', 'list', '--quiet'], 10_000);
        if (left.code !== 0 || left.stdout.trim() === '') break;
        await sleep(500);
      }
      await stopGuarded(kubelet.child);
    }
    // Whatever the kubelet left: kill and delete the tasks and containers.
    if (containerd && !exited(containerd.child)) {
      const tasks = (await ctr(['tasks', 'list', '--quiet'], 10_000)).stdout.split('\n').filter(Boolean);
      for (const t of tasks) await ctr(['tasks', 'kill', '--signal', 'SIGKILL', t], 10_000);
      for (const t of tasks) await ctr(['tasks', 'delete', '--force', t], 10_000);
      const containers = (await ctr(['containers', 'list', '--quiet'], 10_000)).stdout.split('\n').filter(Boolean);
      for (const c of containers) await ctr(['containers', 'delete', c], 10_000);
      await stopGuarded(containerd.child);
    }
    for (const p of procs) await stopGuarded(p.child);
    await killLeftovers(dir);
    for (const ns of listNetns()) {
      if (netnsBefore.has(ns) || !ns.startsWith('cni-')) continue;
      const path = join(NETNS_DIR, ns);
      await runCommand('umount', [path], process.env, { allowFailure: true });
      rmSync(path, { force: true });
    }
    await unmountAll(dir);
    if (bridgeMade) await runCommand('ip', ['link', 'delete', bridge], process.env, { allowFailure: true });
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    // The pod network: a bridge with the host's end at .1, made here so its address exists (and
    // can be listened on) before the first pod.
    writeFileSync(join(dir, 'owner.json'), JSON.stringify({ pid: process.pid, bridge } satisfies Owner));
    const prefix = await freeSubnet();
    gateway = `${prefix}.1`;
    await runCommand('ip', ['link', 'add', 'name', bridge, 'type', 'bridge'], process.env);
    bridgeMade = true;
    await runCommand('ip', ['addr', 'add', `${gateway}/24`, 'dev', bridge], process.env);
    await runCommand('ip', ['link', 'set', bridge, 'up'], process.env);
    mkdirSync(join(dir, 'cni'));
    writeFileSync(
      join(dir, 'cni', '10-node-suite.conflist'),
      JSON.stringify({
        cniVersion: '0.4.0',
        name: `node-suite-${id}`,
        plugins: [
          {
            type: 'bridge',
            bridge,
            isGateway: true,
            ipMasq: false,
            ipam: {
              type: 'host-local',
              ranges: [[{ subnet: `${prefix}.0/24`, gateway }]],
              dataDir: join(dir, 'cni-ipam'),
            },
          },
        ],
      }),
    );

    // containerd, with restrict_oom_score_adj: this machine's root lacks CAP_SYS_RESOURCE, and
    // the negative oom_score_adj of a sandbox then makes runc fail.
    writeFileSync(
      join(dir, 'containerd.toml'),
      [
        'version = 2',
        `root = "${join(dir, 'root')}"`,
        `state = "${join(dir, 'state')}"`,
        '[grpc]',
        `  address = "${socket}"`,
        '[plugins."io.containerd.grpc.v1.cri"]',
        `  sandbox_image = "${opts.pauseImage}"`,
        '  restrict_oom_score_adj = true',
        '  stream_server_address = "127.0.0.1"',
        '  stream_server_port = "0"',
        '  [plugins."io.containerd.grpc.v1.cri".containerd]',
        '    snapshotter = "overlayfs"',
        // runc's state in the scratch directory too, not the machine's /run/containerd/runc.
        '    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]',
        '      runtime_type = "io.containerd.runc.v2"',
        '      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]',
        `        Root = "${join(dir, 'runc')}"`,
        '  [plugins."io.containerd.grpc.v1.cri".cni]',
        '    bin_dir = "/usr/lib/cni"',
        `    conf_dir = "${join(dir, 'cni')}"`,
        '',
      ].join('\n'),
    );
    start('containerd', join(BIN_DIR, 'containerd'), ['--config', join(dir, 'containerd.toml')]);
    await waitFor('containerd', async () => existsSync(socket) && (await ctr(['version'], 5_000)).code === 0);
    for (const archive of opts.archives) {
      const r = await ctr(['images', 'import', '--snapshotter', 'overlayfs', archive], 300_000);
      if (r.code !== 0) throw new Error(`ctr images import ${archive} failed:\n${r.stderr || r.stdout}`);
    }

    // The kubelet: cgroup v1 and no systemd here; no eviction or image garbage collection, so the
    // imported images (there is no registry to pull them again) stay.
    const [port, healthzPort] = [await freePort(), await freePort()];
    writeFileSync(
      join(dir, 'kubelet.yaml'),
      stringify({
        apiVersion: 'kubelet.config.k8s.io/v1beta1',
        kind: 'KubeletConfiguration',
        cgroupDriver: 'cgroupfs',
        failCgroupV1: false,
        failSwapOn: false,
        cgroupsPerQOS: false,
        enforceNodeAllocatable: [],
        localStorageCapacityIsolation: false,
        evictionHard: {},
        imageGCHighThresholdPercent: 100,
        imageGCLowThresholdPercent: 99,
        containerRuntimeEndpoint: `unix://${socket}`,
        podLogsDir,
        authentication: { anonymous: { enabled: true }, webhook: { enabled: false } },
        authorization: { mode: 'AlwaysAllow' },
        address: gateway,
        port,
        healthzBindAddress: '127.0.0.1',
        healthzPort,
        readOnlyPort: 0,
      }),
    );
    start('kubelet', join(BIN_DIR, 'kubelet'), [
      `--config=${join(dir, 'kubelet.yaml')}`,
      `--kubeconfig=${cluster.kubeconfigPath}`,
      `--root-dir=${join(dir, 'kubelet')}`,
      `--hostname-override=${name}`,
      // The kubelet refuses a loopback node address; the bridge's is as local and not loopback.
      `--node-ip=${gateway}`,
      '--v=2',
    ]);
    const core = connectCluster(cluster).kubeConfig.makeApiClient(CoreV1Api);
    await waitFor(`node ${name} Ready`, async () => {
      const node = await core.readNode({ name });
      return node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
    });
    return { name, gateway, socket, podLogsDir, logDir: opts.logDir, stop };
  } catch (e) {
    await stop().catch(() => undefined);
    throw e;
  }
}
