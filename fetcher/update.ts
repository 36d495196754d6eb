// Values -> files for the refresh sidecar: only files whose content (or mode, or owner) changed
// are rewritten, each atomically, then the marker. The volume is shared with the app and its
// default place, /tmp, is writable by it: between refreshes (and during one) another container
// may plant symbolic links or swap directories. So nothing here resolves a path by name twice:
// every directory is opened once, without following links (O_NOFOLLOW | O_DIRECTORY), checked to
// be on the volume, and everything in it is then done through that open directory
// (/proc/self/fd/<fd>/<name>, the kernel's openat for a program without openat). A directory
// renamed away meanwhile is still the one written to, and a rename cannot leave the filesystem,
// so no write ever lands outside the volume; a link where a directory should be is refused, and
// a link or anything else where a file should be is replaced, never followed.
//
// A failure never deletes, truncates or rolls back a file: each file is the old one or the whole
// new one, and files that could not be written keep their last content.

import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, unlink, type FileHandle } from 'node:fs/promises';
import { failure, type Failure } from './errors.js';
import type { OutputFile } from './render.js';
import { MARKER_FILE } from './spec.js';
import type { Marker } from './write.js';

const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW, O_NONBLOCK, O_WRONLY, O_CREAT, O_EXCL } = constants;
const errno = (e: unknown): string | undefined => (e as NodeJS.ErrnoException)?.code;

/** The temp name writeAtomic (write.ts) uses too, so either cleans up after the other. */
const TEMP_NAME = /^\..+\.tmp-\d+-[0-9a-f]{8}$/s;
const tempName = (name: string): string => `.${name.slice(0, 200)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;

/** A path through an open directory: the kernel resolves it from the directory itself, never by name. */
const at = (dir: FileHandle, name: string): string => `/proc/self/fd/${dir.fd}/${name}`;

export interface UpdateResult {
  /** Paths (relative to the mount) rewritten in this pass. */
  changed: string[];
  /** One per file or directory that could not be written; those files keep their last content. */
  failures: Failure[];
}

export interface WriteFailure {
  path: string;
  failure: Failure;
}

/** Decides the marker once the files are written: undefined leaves the marker as it is. */
export type MarkerFor = (changed: string[], failed: WriteFailure[]) => Marker | undefined;

export interface UpdateHooks {
  /** Called with each directory once it is open, before anything is written in it (tests swap it here). */
  afterOpen?: (relDir: string) => Promise<void> | void;
}

class Tampered extends Error {}

/** The directories of one pass, opened once each, from the volume's root down. */
class Dirs {
  private readonly open = new Map<string, FileHandle>();
  private readonly cleaned: Set<string>;
  constructor(
    private readonly root: FileHandle,
    private readonly dev: number,
    cleaned: Set<string>,
    private readonly hooks: UpdateHooks,
  ) {
    this.open.set('.', root);
    this.cleaned = cleaned;
  }

  async get(rel: string): Promise<FileHandle> {
    const have = this.open.get(rel);
    if (have !== undefined) return have;
    const slash = rel.lastIndexOf('/');
    const parent = await this.get(slash < 0 ? '.' : rel.slice(0, slash));
    const name = slash < 0 ? rel : rel.slice(slash + 1);
    let dir = await openDir(parent, name, rel);
    if (dir === undefined) {
      await mkdir(at(parent, name), { mode: 0o755 }).catch((e: unknown) => {
        if (errno(e) !== 'EEXIST') throw e;
      });
      dir = await openDir(parent, name, rel);
      if (dir === undefined) throw new Tampered(`${rel} disappeared while it was being created`);
      // The umask may have taken bits away; app containers may run as another uid.
      await dir.chmod(0o755);
    }
    const st = await dir.stat();
    if (st.dev !== this.dev) {
      await dir.close();
      throw new Tampered(`${rel} is not on the secrets volume`);
    }
    this.open.set(rel, dir);
    await this.clean(rel, dir);
    await this.hooks.afterOpen?.(rel);
    return dir;
  }

  /** Temp files a killed run left (same rule as write.ts: our name pattern, our uid, regular files). */
  private async clean(rel: string, dir: FileHandle): Promise<void> {
    if (this.cleaned.has(rel)) return;
    this.cleaned.add(rel);
    const uid = process.getuid?.();
    for (const entry of await readdir(at(dir, '.'), { withFileTypes: true })) {
      if (!entry.isFile() || !TEMP_NAME.test(entry.name)) continue;
      const fh = await open(at(dir, entry.name), O_RDONLY | O_NOFOLLOW | O_NONBLOCK).catch(() => undefined);
      if (fh === undefined) continue;
      const st = await fh.stat().finally(() => fh.close());
      if (st.isFile() && (uid === undefined || st.uid === uid)) await unlink(at(dir, entry.name)).catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    for (const [rel, fh] of this.open) if (rel !== '.') await fh.close().catch(() => undefined);
    this.open.clear();
  }
}

async function openDir(parent: FileHandle, name: string, rel: string): Promise<FileHandle | undefined> {
  try {
    return await open(at(parent, name), O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  } catch (e) {
    const code = errno(e);
    if (code === 'ENOENT') return undefined;
    // With O_DIRECTORY, Linux reports a link as ENOTDIR (ELOOP without it).
    if (code === 'ELOOP' || (code === 'ENOTDIR' && (await lstat(at(parent, name)).catch(() => undefined))?.isSymbolicLink())) {
      throw new Tampered(`${rel} is a symbolic link; refusing to write through it`);
    }
    if (code === 'ENOTDIR') throw new Tampered(`${rel} exists and is not a directory`);
    throw e;
  }
}

/** Whether `name` in `dir` already is a regular file of ours with exactly this content and mode. */
async function unchanged(dir: FileHandle, name: string, data: Uint8Array, mode: number): Promise<boolean> {
  let fh: FileHandle;
  try {
    // O_NOFOLLOW: a link planted here is "changed" (and replaced), never read through;
    // O_NONBLOCK: a FIFO planted here must not hang the sidecar.
    fh = await open(at(dir, name), O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch {
    return false;
  }
  try {
    const st = await fh.stat();
    const uid = process.getuid?.();
    if (!st.isFile() || (st.mode & 0o7777) !== mode || st.size !== data.byteLength || (uid !== undefined && st.uid !== uid)) return false;
    const have = await fh.readFile();
    return Buffer.compare(have, data) === 0;
  } finally {
    await fh.close();
  }
}

/** Temp file in the open directory, fsync, rename over the name: readers see the old or the whole new file. */
async function replace(dir: FileHandle, name: string, data: Uint8Array, mode: number): Promise<void> {
  const tmp = tempName(name);
  // O_EXCL|O_CREAT never follows or reuses whatever is already there.
  const fh = await open(at(dir, tmp), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
  try {
    try {
      await fh.writeFile(data);
      await fh.chmod(mode); // the umask may have taken bits away at open
      await fh.sync();
    } finally {
      await fh.close();
    }
    // rename replaces a link or file at `name` itself; it fails on a directory.
    await rename(at(dir, tmp), at(dir, name));
  } catch (e) {
    await unlink(at(dir, tmp)).catch(() => undefined);
    throw e;
  }
}

function writeFailure(path: string, e: unknown): Failure {
  const code = errno(e);
  const why = e instanceof Tampered ? e.message : code === 'EISDIR' || code === 'ENOTEMPTY' || code === 'EEXIST' ? `${path} is a directory` : ((e as Error)?.message ?? String(e));
  return failure('FETCH_WRITE', `writing ${path} failed: ${why}`, {
    hint:
      e instanceof Tampered || code === 'EISDIR'
        ? 'another container changed the secrets volume; the file keeps its last content'
        : code === 'ENOSPC'
          ? 'the secrets volume is full; raise its size limit'
          : 'the file keeps its last content',
  });
}

/**
 * Rewrites the files of `files` whose content, mode or owner differs from what is on the volume,
 * then the marker (when `markerFor` gives one), through directories opened once each. `cleaned`
 * remembers, across passes, the directories already cleared of stale temp files.
 */
export async function updateSecrets(
  root: string,
  files: OutputFile[],
  markerFor: MarkerFor,
  cleaned: Set<string> = new Set(),
  hooks: UpdateHooks = {},
): Promise<UpdateResult> {
  const changed: string[] = [];
  const failed: WriteFailure[] = [];
  let rootFh: FileHandle;
  try {
    rootFh = await open(root, O_RDONLY | O_DIRECTORY);
  } catch (e) {
    return { changed, failures: [writeFailure(root, e)] };
  }
  const dirs = new Dirs(rootFh, (await rootFh.stat()).dev, cleaned, hooks);
  const synced = new Set<FileHandle>();
  try {
    for (const f of files) {
      const slash = f.path.lastIndexOf('/');
      const rel = slash < 0 ? '.' : f.path.slice(0, slash);
      const name = f.path.slice(slash + 1);
      try {
        const dir = await dirs.get(rel);
        if (await unchanged(dir, name, f.data, f.mode)) continue;
        await replace(dir, name, f.data, f.mode);
        changed.push(f.path);
        synced.add(dir);
      } catch (e) {
        failed.push({ path: f.path, failure: writeFailure(f.path, e) });
      }
    }
    for (const d of synced) await d.sync().catch(() => undefined);
    const marker = markerFor(changed, failed);
    if (marker !== undefined) {
      try {
        await replace(rootFh, MARKER_FILE, Buffer.from(`${JSON.stringify(marker, null, 2)}\n`), 0o444);
        await rootFh.sync();
      } catch (e) {
        failed.push({ path: MARKER_FILE, failure: writeFailure(MARKER_FILE, e) });
      }
    }
  } finally {
    await dirs.close();
    await rootFh.close();
  }
  return { changed, failures: failed.map((f) => f.failure) };
}

/** The marker on the volume, read without following a link; undefined when absent or not ours. */
export async function readMarker(root: string): Promise<Marker | undefined> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(`${root}/${MARKER_FILE}`, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
    const st = await fh.stat();
    if (!st.isFile() || st.size > 1024 * 1024) return undefined;
    const m = JSON.parse((await fh.readFile()).toString('utf8')) as Marker;
    return m && m.version === 1 && Array.isArray(m.secrets) ? m : undefined;
  } catch {
    return undefined;
  } finally {
    await fh?.close();
  }
}
