// Values -> files, all or nothing: every file goes to a temp file in its own directory, is
// fsynced and renamed over its name; directories are created inside the mount only (a symlink
// in the way is refused); the marker is written last, and a failure removes what this run
// already wrote so no half set is ever left looking complete. Temp files a killed run left
// behind (SIGKILL, OOMKilled: the kubelet restarts the container on the same emptyDir) hold
// values under names the app does not expect; they are removed before anything is written.
//
// The calls are synchronous: the fetcher does nothing else meanwhile, and a few hundred small
// operations on a memory-backed volume cost less CPU made directly than as promises through
// libuv's thread pool (about 1 ms per file; an init container under a CPU limit waits for it).

import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  fchmodSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmdirSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { FetchError, failure } from './errors.js';
import type { OutputFile } from './render.js';
import { MARKER_FILE } from './spec.js';

export interface MarkerEntry {
  ref: string;
  arn?: string;
  versionId?: string;
  files: string[];
  /** A whole path's secrets (ref ending in "/*"), by the rest of their names. */
  members?: Array<{ name: string; arn?: string; versionId?: string }>;
}

/** What the marker holds: references, version ids and file names. Never a value. */
export interface Marker {
  version: 1;
  /** When every secret was last fetched and written (ISO 8601): the first fetch, then each complete refresh. */
  fetchedAt?: string;
  secrets: MarkerEntry[];
}

const errno = (e: unknown): string | undefined => (e as NodeJS.ErrnoException)?.code;

function syncDir(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** unlink, where a file already gone is fine. */
function unlinkIfThere(path: string): void {
  try {
    unlinkSync(path);
  } catch (e) {
    if (errno(e) !== 'ENOENT') throw e;
  }
}

/** The temp name writeAtomic uses: `.<name, cut to 200>.tmp-<pid>-<8 hex>`. */
const TEMP_NAME = /^\..+\.tmp-\d+-[0-9a-f]{8}$/s;

/** Temp file beside the target, fsync, rename: readers see the old file or the whole new one. */
export async function writeAtomic(path: string, data: Uint8Array, mode: number): Promise<void> {
  writeAtomicNow(path, data, mode);
}

function writeAtomicNow(path: string, data: Uint8Array, mode: number): void {
  // The name is cut so that the temp name fits NAME_MAX (255) whenever the final name does.
  const tmp = join(dirname(path), `.${basename(path).slice(0, 200)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  // 'wx' is O_CREAT|O_EXCL: never follows or reuses whatever is already there.
  const fd = openSync(tmp, 'wx', mode);
  try {
    try {
      writeFileSync(fd, data);
      fchmodSync(fd, mode); // the umask may have taken bits away at open
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      // already gone, or never made
    }
    throw e;
  }
}

/** Creates `rel`'s directories under `root`, refusing anything that is not a real directory. */
function mkdirInside(root: string, rel: string): string[] {
  const created: string[] = [];
  if (rel === '.' || rel === '') return created;
  let current = root;
  for (const segment of rel.split('/')) {
    current = join(current, segment);
    const st = lstatSync(current, { throwIfNoEntry: false });
    if (st === undefined) {
      mkdirSync(current, { mode: 0o755 });
      created.push(current);
      // The umask may have taken bits away; app containers may run as another uid.
      chmodSync(current, 0o755);
    } else if (st.isSymbolicLink()) throw new Error(`${current} is a symbolic link; refusing to write through it`);
    else if (!st.isDirectory()) throw new Error(`${current} exists and is not a directory`);
  }
  return created;
}

/** `rel`'s directory under `root` if it already exists as real directories all the way down. */
function existingDirInside(root: string, rel: string): string | undefined {
  let current = root;
  if (rel === '.' || rel === '') return current;
  for (const segment of rel.split('/')) {
    current = join(current, segment);
    let st;
    try {
      st = lstatSync(current);
    } catch {
      return undefined;
    }
    if (st === undefined || st.isSymbolicLink() || !st.isDirectory()) return undefined;
  }
  return current;
}

/**
 * Removes, from `path`, the temp files a killed run of this writer left: regular files named
 * as writeAtomic names them and owned by this process's user. Nothing else is touched: the
 * directory may be shared with the app (/tmp).
 */
function removeStaleTemps(path: string): void {
  const uid = process.getuid?.();
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    if (!entry.isFile() || !TEMP_NAME.test(entry.name)) continue;
    const p = join(path, entry.name);
    let st;
    try {
      st = lstatSync(p);
    } catch {
      continue;
    }
    if (!st.isFile() || (uid !== undefined && st.uid !== uid)) continue;
    unlinkIfThere(p);
  }
}

export async function writeSecrets(dir: string, files: OutputFile[], marker: Marker): Promise<void> {
  const written: string[] = [];
  const createdDirs: string[] = [];
  const touchedDirs = new Set<string>([dir]);
  let current = '';
  try {
    let st;
    try {
      st = lstatSync(dir);
    } catch (e) {
      throw new Error(errno(e) === 'ENOENT' ? `${dir} does not exist (is the secrets volume mounted there?)` : String((e as Error).message));
    }
    if (!st.isDirectory()) throw new Error(`${dir} is not a directory`);
    // A marker from an earlier run must not vouch for the files about to be replaced.
    unlinkIfThere(join(dir, MARKER_FILE));
    // Every directory this run writes to that already exists (directories about to be created
    // hold nothing), checked as mkdirInside will check it before writing: no symbolic links.
    const dirs = new Set<string>();
    for (const rel of new Set(['.', ...files.map((f) => dirname(f.path))])) {
      const existing = existingDirInside(dir, rel);
      if (existing !== undefined) dirs.add(existing);
    }
    for (const d of dirs) removeStaleTemps(d);
    for (const f of files) {
      current = f.path;
      createdDirs.push(...mkdirInside(dir, dirname(f.path)));
      const path = join(dir, f.path);
      if (lstatSync(path, { throwIfNoEntry: false })?.isDirectory()) throw new Error(`${path} is a directory`);
      writeAtomicNow(path, f.data, f.mode);
      written.push(path);
      touchedDirs.add(dirname(path));
    }
    for (const d of touchedDirs) syncDir(d);
    current = MARKER_FILE;
    writeAtomicNow(join(dir, MARKER_FILE), Buffer.from(`${JSON.stringify(marker, null, 2)}\n`), 0o444);
    syncDir(dir);
  } catch (e) {
    for (const p of written) {
      try {
        unlinkSync(p);
      } catch {
        // already gone
      }
    }
    for (const d of createdDirs.reverse()) {
      try {
        rmdirSync(d);
      } catch {
        // not empty, or gone
      }
    }
    const code = errno(e);
    const why = (e as Error)?.message ?? String(e);
    throw new FetchError([
      failure('FETCH_WRITE', `writing ${current === '' ? dir : current} failed: ${why}`, {
        hint:
          code === 'EACCES' || code === 'EPERM'
            ? 'the fetcher runs as a non-root user; the volume must be writable by it (an emptyDir is)'
            : code === 'ENOSPC'
              ? 'the secrets volume is full; raise its size limit'
              : 'nothing was left behind: no file of this run remains and no marker was written',
      }),
    ]);
  }
}
