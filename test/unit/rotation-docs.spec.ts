// The watchers and the entrypoint docs/rotation.md shows are run as readers would use them: each
// watcher against a marker whose `changedAt` moves once (it must reload exactly once, and not for
// a rewrite that keeps `changedAt`), and the entrypoint with a stand-in app whose environment file
// changes before a SIGHUP.

import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { blocks } from '../helpers/docs.js';
import { inCI } from '../helpers/tools.js';

const DOC = 'docs/rotation.md';
const dir = mkdtempSync(join(tmpdir(), 'rotation-docs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const block = (lang: string) => {
  const b = blocks(DOC).filter((x) => x.lang === lang);
  expect(b.length, `${DOC} has one ${lang} block`).toBe(1);
  return b[0]!.text;
};

/** The marker replaced by rename, as the fetcher and the refresher write it. */
function writeMarker(path: string, changedAt: string, fetchedAt: string): void {
  writeFileSync(`${path}.tmp`, JSON.stringify({ version: 1, fetchedAt, changedAt, secrets: [] }));
  renameSync(`${path}.tmp`, path);
}

async function output(child: ChildProcess, pattern: RegExp, ms: number): Promise<string> {
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const until = Date.now() + ms;
  while (!pattern.test(out) && Date.now() < until && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
  return out;
}

/** Runs a watcher: one reload when changedAt moves, none for a rewrite that keeps it. */
async function watcher(start: (marker: string) => ChildProcess): Promise<void> {
  const marker = join(dir, `marker-${Math.random().toString(16).slice(2)}`);
  writeMarker(marker, '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z');
  const child = start(marker);
  try {
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    // Once it has read the marker as it was (a slow start must not see the rotation first).
    const ready = Date.now() + 20_000;
    while (!out.includes('ready') && Date.now() < ready && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
    writeMarker(marker, '2026-01-01T00:00:00.000Z', '2026-01-01T00:05:00.000Z'); // a refresh that changed nothing
    await new Promise((r) => setTimeout(r, 1_000));
    writeMarker(marker, '2026-01-01T00:10:00.000Z', '2026-01-01T00:10:00.000Z'); // a rotation
    const until = Date.now() + 20_000;
    while (!out.includes('reload') && Date.now() < until && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 1_500));
    expect(out).toBe('ready\nreload\n');
  } finally {
    child.kill('SIGKILL');
  }
}

// The examples poll every 5 s; here every 200 ms. The other edit: they say when they have read the
// marker as it was.
const fast = (text: string, from: string, to: string) => {
  expect(text).toContain(from);
  return text.replace(from, to);
};

describe('docs/rotation.md, run', () => {
  it('the Node.js watcher reloads once per rotation', async () => {
    const src = fast(fast(block('js'), '}, 5_000);', '}, 200);'), 'let seen = await changedAt();', "let seen = await changedAt();\nconsole.log('ready');");
    await watcher((marker) => {
      const file = join(dir, 'watch.mjs');
      writeFileSync(file, `const reload = () => console.log('reload');\n${src.replace('/tmp/.secrets-ready', marker)}`);
      return spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'] });
    });
  }, 30_000);

  const python = spawnSync('python3', ['--version']).status === 0;
  it.skipIf(!python && !inCI())('the Python watcher reloads once per rotation', async () => {
    const src = fast(fast(block('python'), 'time.sleep(5)', 'time.sleep(0.2)'), 'seen = changed_at()\n', 'seen = changed_at()\nprint("ready", flush=True)\n');
    await watcher((marker) => {
      const file = join(dir, 'watch.py');
      writeFileSync(file, `def reload():\n    print("reload", flush=True)\n\n\n${src.replace('/tmp/.secrets-ready', marker)}`);
      return spawn('python3', [file], { stdio: ['ignore', 'pipe', 'pipe'] });
    });
  }, 30_000);

  const go = spawnSync('go', ['version']).status === 0;
  it.skipIf(!go && !inCI())('the Go watcher reloads once per rotation', async () => {
    const src = fast(fast(block('go'), '5 * time.Second', '200 * time.Millisecond'), 'seen := changedAt()\n', 'seen := changedAt()\n\tfmt.Println("ready")\n');
    const mod = mkdtempSync(join(dir, 'go-'));
    writeFileSync(join(mod, 'go.mod'), 'module watch\n\ngo 1.21\n');
    await watcher((marker) => {
      writeFileSync(
        join(mod, 'main.go'),
        `package main\n\nimport (\n\t"context"\n\t"encoding/json"\n\t"fmt"\n\t"os"\n\t"time"\n)\n\n${src.replace('/tmp/.secrets-ready', marker)}\nfunc main() { watchSecrets(context.Background(), func() { fmt.Println("reload") }) }\n`,
      );
      execFileSync('go', ['build', '-o', join(mod, 'watch'), '.'], { cwd: mod, env: { ...process.env, GOFLAGS: '-mod=mod', GOTOOLCHAIN: 'local' } });
      return spawn(join(mod, 'watch'), [], { stdio: ['ignore', 'pipe', 'pipe'] });
    });
  }, 120_000);

  it('the entrypoint starts the app with the environment file, and again with the new values after SIGHUP', async () => {
    const env = join(dir, 'app.env');
    writeFileSync(env, "TOKEN='first'\n");
    const bin = mkdtempSync(join(dir, 'bin-'));
    writeFileSync(join(bin, 'app'), '#!/bin/sh\necho "app sees $TOKEN"\nexec sleep 30\n');
    chmodSync(join(bin, 'app'), 0o755);
    const script = join(dir, 'entrypoint.sh');
    writeFileSync(script, block('sh').replace('/tmp/app.env', env));
    const child = spawn('sh', [script], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
    try {
      let out = await output(child, /app sees first/, 10_000);
      expect(out).toContain('app sees first');
      writeFileSync(env, "TOKEN='second'\n");
      child.kill('SIGHUP');
      out = await output(child, /app sees second/, 10_000);
      expect(out).toContain('app sees second');
      child.kill('SIGTERM');
      const code = await new Promise((r) => child.on('exit', (c, s) => r(c ?? s)));
      expect(code).not.toBe(null);
    } finally {
      child.kill('SIGKILL');
    }
  }, 30_000);
});
