// Values -> files, all or nothing, through the volume's open directories (volume.ts): every file
// goes into a new version directory, created inside the volume only (a link, a FIFO or another
// user's directory in the way is refused), with the marker beside them; the files an earlier run
// wrote that this one does not (a key removed from an exploded secret) are left out of it, the
// app's own files in those directories carried over; then the version is checked to be still
// where it was written and published by one rename of `..data`. A failure removes the new
// version, so the app reads the earlier run's complete set or this one's, never a mix. What a
// killed run left behind (SIGKILL, OOMKilled: the kubelet restarts the container on the same
// emptyDir) is removed before anything is written.

import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import { FetchError, failure, type Failure } from './errors.js';
import type { OutputFile } from './render.js';
import { MARKER_FILE } from './spec.js';
import { at, errno, insideVolume, Tampered, topOf, Volume, type VolumeHooks } from './volume.js';

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

export const markerBytes = (marker: Marker): Buffer => Buffer.from(`${JSON.stringify(marker, null, 2)}\n`);

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
  let current = '';
  let vol: Volume | undefined;
  let version: string | undefined;
  let before: string | undefined;
  try {
    try {
      vol = await Volume.open(dir, new Set(), opts.hooks);
    } catch (e) {
      const code = errno(e);
      throw new Error(code === 'ENOENT' ? `${dir} does not exist (is the secrets volume mounted there?)` : code === 'ENOTDIR' ? `${dir} is not a directory` : String((e as Error).message));
    }
    before = await vol.current();
    // A marker that is not the link to the current version (an earlier layout's, or planted) vouches for nothing.
    if (vol.stat(vol.root, MARKER_FILE)?.isSymbolicLink() === false) vol.unlink(vol.root, MARKER_FILE);
    // The app reaches each file through the link of its top-level name: a directory there cannot become one.
    for (const f of files) {
      current = f.path;
      if (vol.stat(vol.root, topOf(f.path))?.isDirectory()) throw new Tampered(`${topOf(f.path)} is a directory`);
    }
    version = await vol.createVersion();
    for (const f of files) {
      current = f.path;
      if (opts.expired?.() === true) throw new DeadlinePassed();
      vol.hooks.beforeWrite?.(f.path);
      const { fd, name } = await vol.dirOf(version, f.path);
      vol.create(fd, name, f.data, f.mode);
    }
    current = '';
    if (before !== undefined) {
      // Files an earlier run wrote that this one does not (a key gone from an exploded secret) are
      // left out; anything else there (the app's own files in a directory of ours) is carried over.
      const earlier = readMarkerAt((await vol.dir(before, false)) as number);
      const now = new Set(files.map((f) => f.path));
      const listed = new Set(earlier?.secrets.flatMap((s) => (Array.isArray(s.files) ? s.files : [])).filter((p) => typeof p === 'string' && insideVolume(p)));
      await vol.carry(before, version, (await vol.files(before)).filter((p) => !now.has(p) && !listed.has(p)));
    }
    current = MARKER_FILE;
    vol.create((await vol.dir(version, false)) as number, MARKER_FILE, markerBytes(marker), 0o444);
    current = '';
    await vol.publish(version);
    version = undefined;
  } catch (e) {
    // The earlier run's version (if any) stays whole and current; this run's is removed.
    if (vol !== undefined) await vol.sweep(before).catch(() => undefined);
    throw new FetchError([writeFailure(dir, current, e)]);
  } finally {
    if (version !== undefined) vol?.removeTree(version);
    vol?.close();
  }
}
