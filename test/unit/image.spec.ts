// The container image, checked without a Docker engine: the Dockerfile's runtime stages copy
// only files the build produces, pinned minimal bases, non-root, no shell needed; the build
// stage copies every source the bundles read and compiles the fetcher for the target platform;
// and the programs, laid out exactly as in the images, run from a directory with no node_modules
// anywhere above it.

import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/tools.js';

interface Instruction {
  op: string;
  args: string;
}
interface Stage {
  from: string;
  name: string;
  instructions: Instruction[];
}

/** A small Dockerfile reader: line continuations, comments, global ARG defaults, stages. */
function readDockerfile(text: string): { args: Record<string, string>; stages: Stage[] } {
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const raw of lines) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const [, op = '', rest = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    const OP = op.toUpperCase();
    if (OP === 'FROM') {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest);
      if (!m) throw new Error(`cannot read FROM ${rest}`);
      const from = m[1]!.replace(/\$\{(\w+)\}/g, (_, k: string) => args[k] ?? `<unset ${k}>`);
      stages.push({ from, name: m[2] ?? String(stages.length), instructions: [] });
    } else if (OP === 'ARG' && stages.length === 0) {
      const [k, v = ''] = rest.split('=', 2) as [string, string?];
      args[k] = v;
    } else {
      const stage = stages.at(-1);
      if (!stage) throw new Error(`${OP} before the first FROM`);
      stage.instructions.push({ op: OP, args: rest });
    }
  }
  return { args, stages };
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)).split(sep).join('/'))
    .sort();
}

const dockerfile = readDockerfile(readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8'));
const stage = (name: string): Stage => {
  const s = dockerfile.stages.find((x) => x.name === name);
  if (!s) throw new Error(`no stage ${name}`);
  return s;
};
const RUNTIME = ['fetcher', 'webhook'] as const;
/** `COPY --from=build SRC DEST` of a stage, as [src, dest] pairs. */
const copiesFromBuild = (s: Stage): Array<[string, string]> =>
  s.instructions
    .filter((i) => i.op === 'COPY')
    .map((i) => {
      const m = /^--from=(\S+)\s+(\S+)\s+(\S+)$/.exec(i.args);
      if (!m || m[1] !== 'build') throw new Error(`stage ${s.name}: COPY ${i.args} does not come from the build stage`);
      return [m[2]!, m[3]!];
    });
/** Files the build makes that no image takes: the fetcher's bundle as a script (compiled into the executable), its source map, and the Node.js entry with its code cache. */
const NOT_SHIPPED = ['fetcher.cache', 'fetcher.cjs', 'fetcher.cjs.map', 'start.cjs'];

// The build stage writes the bundles to BUNDLE_OUT=<dir>; find that directory.
const BUILD_OUT = (() => {
  const run = stage('build').instructions.find((i) => i.op === 'RUN' && i.args.includes('scripts/bundle.mjs'));
  const m = run && /BUNDLE_OUT=(\S+)/.exec(run.args);
  if (!m) throw new Error('the build stage does not run scripts/bundle.mjs with BUNDLE_OUT');
  return m[1]!;
})();

let work: string;
let built: string[];

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'asi-image-'));
  const r = spawnSync(process.execPath, ['scripts/bundle.mjs'], {
    cwd: REPO_ROOT,
    env: { ...process.env, BUNDLE_OUT: join(work, 'out') },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`bundling failed: ${r.stderr}`);
  built = filesUnder(join(work, 'out'));
  // Lay the files out as each stage does, under <work>/<stage>/...
  for (const name of RUNTIME) {
    for (const [src, dest] of copiesFromBuild(stage(name))) cpSync(join(work, 'out', relative(BUILD_OUT, src)), join(work, name, dest), { recursive: true });
  }
}, 120_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('Dockerfile', () => {
  it('has a build stage and the fetcher and webhook runtime stages, the webhook last (the default target)', () => {
    expect(dockerfile.stages.map((s) => s.name)).toEqual(['build', 'fetcher', 'webhook']);
  });

  it('pins every base image by digest; the runtime base is distroless Node.js 24, running as nonroot', () => {
    for (const s of dockerfile.stages) expect(s.from, s.name).toMatch(/^[^@\s]+:[^@\s]+@sha256:[a-f0-9]{64}$/);
    for (const name of RUNTIME) expect(stage(name).from).toMatch(/^gcr\.io\/distroless\/nodejs24-debian12:nonroot@/);
    expect(stage('build').from).toMatch(/^node:24-bookworm-slim@/);
  });

  it('the bundles, the package, the type-check and the test run all target the images\' Node.js major', () => {
    const major = /distroless\/nodejs(\d+)-/.exec(stage('fetcher').from)![1];
    expect(/^node:(\d+)-/.exec(stage('build').from)![1]).toBe(major);
    expect(readFileSync(join(REPO_ROOT, 'scripts/bundle.mjs'), 'utf8')).toContain(`target: 'node${major}'`);
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8'));
    expect(pkg.engines.node).toBe(`>=${major}`);
    expect(pkg.devDependencies['@types/node']).toMatch(new RegExp(`^\\^${major}\\.`));
    expect(readFileSync(join(REPO_ROOT, 'scripts/node.sh'), 'utf8')).toMatch(new RegExp(`^NODE_VERSION=${major}\\.\\d+\\.\\d+$`, 'm'));
    expect(process.versions.node.split('.')[0]).toBe(major);
  });

  it('runtime stages copy only from their source stage, run nothing, and run as a non-root uid', () => {
    for (const name of RUNTIME) {
      const s = stage(name);
      expect(s.instructions.map((i) => i.op).filter((op) => !['COPY', 'USER', 'ENTRYPOINT', 'CMD', 'EXPOSE'].includes(op)), name).toEqual([]);
      expect(() => copiesFromBuild(s)).not.toThrow();
      const user = s.instructions.find((i) => i.op === 'USER')?.args;
      expect(user, name).toMatch(/^[1-9]\d*(:[1-9]\d*)?$/);
    }
  });

  it('the build stage runs on the builder\'s platform and compiles the fetcher for the target\'s, with the Bun release the lock file pins for both', () => {
    expect(readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8')).toMatch(/^FROM --platform=\$BUILDPLATFORM \$\{BUILD_IMAGE\} AS build$/m);
    const build = stage('build').instructions;
    expect(build).toContainEqual({ op: 'ARG', args: 'TARGETARCH' });
    expect(build.find((i) => i.op === 'RUN' && i.args.includes('scripts/bundle.mjs'))!.args).toMatch(/^FETCHER_ARCH=\$TARGETARCH BUNDLE_OUT=\S+ node scripts\/bundle\.mjs$/);
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8'));
    const lock = JSON.parse(readFileSync(join(REPO_ROOT, 'package-lock.json'), 'utf8'));
    // A dev dependency: the CLI's package, which needs no Bun, declares none.
    const version = pkg.devDependencies.bun as string;
    expect(version).toMatch(/^\d+\.\d+\.\d+$/);
    expect(pkg.optionalDependencies ?? {}).toEqual({});
    expect(lock.packages['node_modules/bun'].version).toBe(version);
    for (const arch of ['x64', 'aarch64']) expect(lock.packages[`node_modules/@oven/bun-linux-${arch}`].version).toBe(version);
  });

  it('the stages copy only files the build produces, and between them every one it ships', () => {
    const copied = new Set<string>();
    for (const name of RUNTIME) {
      for (const [src] of copiesFromBuild(stage(name))) {
        const rel = relative(BUILD_OUT, src).split(sep).join('/');
        const path = join(work, 'out', rel);
        expect(() => statSync(path), `${name} copies ${src}, which the build does not produce`).not.toThrow();
        const files = statSync(path).isDirectory() ? filesUnder(path).map((f) => `${rel}/${f}`) : [rel];
        files.forEach((f) => copied.add(f));
      }
    }
    expect([...copied].sort()).toEqual(built.filter((f) => !NOT_SHIPPED.includes(f)));
  });

  it('the fetcher image holds the fetcher alone: one executable', () => {
    expect(filesUnder(join(work, 'fetcher'))).toEqual(['app/fetcher']);
    expect(statSync(join(work, 'fetcher', 'app', 'fetcher')).mode & 0o111).toBe(0o111);
  });

  it('entrypoints are exec form: the fetcher executable, node on the webhook\'s bundle, with the documented default args', () => {
    const expected = { fetcher: [['/app/fetcher'], 'app/fetcher', '["fetch"]'], webhook: [['/nodejs/bin/node', '/app/cli.mjs'], 'app/cli.mjs', '["webhook"]'] } as const;
    for (const name of RUNTIME) {
      const s = stage(name);
      const entry = JSON.parse(s.instructions.find((i) => i.op === 'ENTRYPOINT')!.args) as string[];
      expect(entry).toEqual(expected[name][0]);
      expect(statSync(join(work, name, expected[name][1])).isFile()).toBe(true);
      expect(s.instructions.find((i) => i.op === 'CMD')!.args).toBe(expected[name][2]);
    }
  });

  it('the build stage copies every source file the bundles are made from, and .dockerignore keeps none of them out', async () => {
    const copiedPaths = stage('build')
      .instructions.filter((i) => i.op === 'COPY')
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1))
      .filter((p) => !p.startsWith('--'));
    const result = await build({
      entryPoints: ['bin/aws-secret-injector.ts', 'fetcher/bin.ts', 'fetcher/start.ts'],
      absWorkingDir: REPO_ROOT,
      bundle: true,
      platform: 'node',
      format: 'esm',
      write: false,
      metafile: true,
      logLevel: 'silent',
      outdir: join(work, 'meta'),
    });
    const sources = Object.keys(result.metafile.inputs).filter((p) => !p.startsWith('node_modules/'));
    expect(sources.length).toBeGreaterThan(5);
    const covered = (p: string) => copiedPaths.some((c) => p === c || p.startsWith(`${c.replace(/\/$/, '')}/`));
    expect(sources.filter((p) => !covered(p))).toEqual([]);
    for (const f of ['package.json', 'package-lock.json', 'scripts/bundle.mjs', 'scripts/bun.mjs', 'scripts/code-cache.mjs']) expect(covered(f), f).toBe(true);
    const ignored = readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    for (const keepOut of ['node_modules', '.git', '.cache', 'dist']) expect(ignored).toContain(keepOut);
    const ignoredNames = ignored.filter((p) => !p.includes('*'));
    expect(copiedPaths.filter((p) => ignoredNames.includes(p.replace(/\/$/, '')))).toEqual([]);
    expect(sources.filter((p) => p.endsWith('.spec.ts'))).toEqual([]);
  }, 60_000);
});

/** Runs node on a bundle (or, first argument "./fetcher", the executable) in `cwd` with a minimal environment (no NODE_PATH, nothing inherited). */
function runBundle(cwd: string, args: string[], env: Record<string, string> = {}) {
  const [command, ...rest] = args[0] === './fetcher' ? [join(cwd, 'fetcher'), ...args.slice(1)] : [process.execPath, ...args];
  return spawnSync(command!, rest, {
    cwd,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: cwd, ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
}

describe('the bundles run as laid out in the images, with no node_modules', () => {
  it('no node_modules lies in or above the image directories', () => {
    for (let dir = work; ; dir = join(dir, '..')) {
      expect(() => statSync(join(dir, 'node_modules')), dir).toThrow();
      if (dir === join(dir, '..')) break;
    }
  });

  it('fetcher: a missing spec is a clear error, not a missing module', () => {
    const dir = join(work, 'fetcher', 'app');
    const log = join(work, 'termination-log-1');
    const r = runBundle(dir, ['./fetcher', 'fetch'], { SECRET_INJECTOR_TERMINATION_LOG: log });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('SECRET_INJECTOR_SPEC');
    expect(r.stderr).not.toMatch(/ERR_MODULE_NOT_FOUND|Cannot find (module|package)/);
  });

  it('fetcher: a web-identity fetch loads the SDK credential chain and STS, and fails cleanly when AWS is unreachable', () => {
    const dir = join(work, 'fetcher', 'app');
    const out = join(work, 'secrets');
    const token = join(work, 'token');
    writeFileSync(token, 'not-a-real-token');
    const spec = {
      version: 1,
      dir: '/tmp',
      region: 'us-east-1',
      roleArn: 'arn:aws:iam::123456789012:role/chained',
      mode: '0444',
      items: [{ ref: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf', file: 'secret' }],
      timeouts: { callSeconds: 2, deadlineSeconds: 5, maxAttempts: 1 },
    };
    const r = runBundle(dir, ['./fetcher', 'fetch', '--dir', out], {
      SECRET_INJECTOR_SPEC: JSON.stringify(spec),
      SECRET_INJECTOR_POD_NAME: 'app-0',
      SECRET_INJECTOR_POD_NAMESPACE: 'default',
      SECRET_INJECTOR_TERMINATION_LOG: join(work, 'termination-log-2'),
      AWS_REGION: 'us-east-1',
      AWS_ROLE_ARN: 'arn:aws:iam::123456789012:role/pod',
      AWS_WEB_IDENTITY_TOKEN_FILE: token,
      // Port 9 on loopback: nothing listens, so every call fails at once.
      AWS_ENDPOINT_URL: 'http://127.0.0.1:9',
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr).not.toMatch(/ERR_MODULE_NOT_FOUND|Cannot find (module|package)|Dynamic require/);
    expect(r.stderr).toMatch(/ECONNREFUSED/);
  });

  it('webhook image: --help of the CLI and of the webhook command', () => {
    const dir = join(work, 'webhook', 'app');
    let r = runBundle(dir, ['cli.mjs', '--help']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('webhook');
    r = runBundle(dir, ['cli.mjs', 'webhook', '--help']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('--fetcher-image');
  });

  it('webhook image: serves /healthz over TLS and stops cleanly on SIGTERM', async () => {
    const dir = join(work, 'webhook', 'app');
    const child = spawn(process.execPath, ['cli.mjs', 'webhook'], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', SHUTDOWN_TIMEOUT_SECONDS: '5' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const port = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the webhook did not listen within 30 s:\n${stdout}\n${stderr}`)), 30_000);
        child.stdout.on('data', (d: Buffer) => {
          stdout += d.toString();
          const m = /"port":(\d+)[^\n]*"listening"|"msg":"listening"[^\n]*"port":(\d+)/.exec(stdout);
          if (m) {
            clearTimeout(timer);
            resolve(Number(m[1] ?? m[2]));
          }
        });
        child.on('exit', (code) => reject(new Error(`the webhook exited with ${code}:\n${stdout}\n${stderr}`)));
      });
      const status = await new Promise<number>((resolve, reject) => {
        // The development certificate is self-signed; only reachability is checked here.
        const req = request({ host: '127.0.0.1', port, path: '/healthz', rejectUnauthorized: false }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
      expect(status).toBe(200);
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(stdout + stderr).not.toMatch(/ERR_MODULE_NOT_FOUND|Cannot find (module|package)/);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 60_000);
});
