// Values -> files, all or nothing, through the volume's open directories (volume.ts): every file
// goes to a temp file in its own directory, is fsynced and renamed over its name; directories are
// created inside the volume only (a link, a FIFO or another user's directory in the way is
// refused); before the marker is written every directory and file is checked to be still where
// the app looks for it, and the files an earlier run wrote that this one does not (a key removed
// from an exploded secret) are removed; the marker is written last. A failure removes what this
// run already wrote, so no half set is ever left looking complete. Temp files a killed run left
// behind (SIGKILL, OOMKilled: the kubelet restarts the container on the same emptyDir) hold values
// under names the app does not expect; they are removed before anything is written beside them.

import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import { FetchError, failure, type Failure } from './errors.js';
import type { OutputFile } from './render.js';
import { MARKER_FILE } from './spec.js';
import { at, errno, insideVolume, splitPath, Tampered, Volume, type VolumeHooks } from './volume.js';

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
  /** When a file last changed (ISO 8601): the first fetch, then each refresh that rewrote, added or removed one. */
  changedAt?: string;
  secrets: MarkerEntry[];
}

/** The marker in the open root, read without following a link; undefined when absent or not ours. */
export function readMarkerAt(rootFd: number): Marker | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(at(rootFd, MARKER_FILE), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    const st = fstatSync(fd);
    if (!st.isFile() || st.size > 1024 * 1024) return undefined;
    const m = JSON.parse(readFileSync(fd, 'utf8')) as Marker;
    return m && m.version === 1 && Array.isArray(m.secrets) ? m : undefined;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

export interface WriteOptions {
  /** Whether the fetch deadline has passed: writing stops (and removes what it wrote) once it has. */
  expired?: () => boolean;
  hooks?: VolumeHooks;
}

class DeadlinePassed extends Error {}

function writeFailure(dir: string, current: string, e: unknown): Failure {
  if (e instanceof DeadlinePassed) {
    return failure('FETCH_DEADLINE', `the deadline passed while ${current === '' ? dir : current} was being written`, {
      hint: 'nothing was left behind: no file of this run remains and no marker was written; raise the fetch deadline',
    });
  }
  const code = errno(e);
  const why = code === 'EISDIR' || code === 'ENOTEMPTY' || code === 'EEXIST' ? `${current} is a directory` : ((e as Error)?.message ?? String(e));
  return failure('FETCH_WRITE', `writing ${current === '' ? dir : current} failed: ${why}`, {
    hint:
      e instanceof Tampered
        ? 'another container changed the secrets volume while the fetcher wrote it; nothing was left behind'
        : code === 'EACCES' || code === 'EPERM'
          ? 'the fetcher runs as a non-root user; the volume must be writable by it (an emptyDir is)'
          : code === 'ENOSPC'
            ? 'the secrets volume is full; raise its size limit'
            : 'nothing was left behind: no file of this run remains and no marker was written',
  });
}

export async function writeSecrets(dir: string, files: OutputFile[], marker: Marker, opts: WriteOptions = {}): Promise<void> {
  const written: Array<{ fd: number; name: string; ino: number; path: string }> = [];
  let current = '';
  let vol: Volume | undefined;
  try {
    try {
      vol = Volume.open(dir, new Set(), opts.hooks);
    } catch (e) {
      const code = errno(e);
      throw new Error(code === 'ENOENT' ? `${dir} does not exist (is the secrets volume mounted there?)` : code === 'ENOTDIR' ? `${dir} is not a directory` : String((e as Error).message));
    }
    const earlier = readMarkerAt(vol.root);
    // A marker from an earlier run must not vouch for the files about to be replaced.
    vol.unlink(vol.root, MARKER_FILE);
    const touched = new Set<number>([vol.root]);
    for (const f of files) {
      current = f.path;
      if (opts.expired?.() === true) throw new DeadlinePassed();
      const { dir: rel, name } = splitPath(f.path);
      const fd = (await vol.dir(rel, true)) as number;
      if (vol.stat(fd, name)?.isDirectory()) throw new Error(`${f.path} is a directory`);
      written.push({ fd, name, ino: vol.replace(fd, name, f.data, f.mode), path: f.path });
      touched.add(fd);
    }
    current = '';
    const moved = vol.moved();
    if (moved !== undefined) throw new Tampered(`${moved} was moved away while it was being written (another container changed the secrets volume)`);
    for (const w of written) {
      current = w.path;
      if (vol.stat(w.fd, w.name)?.ino !== w.ino) throw new Tampered(`${w.path} was replaced or removed while it was being written (another container changed the secrets volume)`);
    }
    // Files an earlier run wrote that this one does not (a key gone from an exploded secret) must not outlive it.
    const now = new Set(files.map((f) => f.path));
    for (const path of new Set(earlier?.secrets.flatMap((s) => (Array.isArray(s.files) ? s.files : [])) ?? [])) {
      if (typeof path !== 'string' || now.has(path) || !insideVolume(path)) continue;
      current = path;
      const { dir: rel, name } = splitPath(path);
      const fd = await vol.dir(rel, false).catch(() => undefined);
      if (fd !== undefined && vol.removeOurFile(fd, name)) touched.add(fd);
    }
    current = '';
    for (const fd of touched) vol.sync(fd);
    current = MARKER_FILE;
    vol.replace(vol.root, MARKER_FILE, Buffer.from(`${JSON.stringify(marker, null, 2)}\n`), 0o444);
    vol.sync(vol.root);
  } catch (e) {
    for (const w of written) {
      try {
        vol?.unlink(w.fd, w.name);
      } catch {
        // already gone
      }
    }
    vol?.removeCreated();
    throw new FetchError([writeFailure(dir, current, e)]);
  } finally {
    vol?.close();
  }
}
