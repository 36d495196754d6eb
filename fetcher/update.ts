// Values -> files for the refresh sidecar: only files whose content (or mode, or owner) changed
// are rewritten, each atomically, then the marker, through the volume's open directories
// (volume.ts: no path is resolved by name twice, a link or another user's directory where a
// directory should be is refused, and a link or anything else where a file should be is
// replaced, never followed).
//
// A failure never deletes, truncates or rolls back a file: each file is the old one or the whole
// new one, and files that could not be written keep their last content.

import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import { failure, type Failure } from './errors.js';
import type { OutputFile } from './render.js';
import { at, errno, splitPath, Tampered, Volume, type Staged, type VolumeHooks } from './volume.js';
import { MARKER_FILE } from './spec.js';
import { readMarkerAt, type Marker } from './write.js';

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

export type UpdateHooks = VolumeHooks;

/** Whether `name` in `dir` already is a regular file of ours with exactly this content and mode. */
function unchanged(vol: Volume, dir: number, name: string, data: Uint8Array, mode: number): boolean {
  const st = vol.stat(dir, name);
  const uid = process.getuid?.();
  // A link planted here is "changed" (and replaced), never read through.
  if (st === undefined || !st.isFile() || (st.mode & 0o7777) !== mode || st.size !== data.byteLength || (uid !== undefined && st.uid !== uid)) return false;
  let fd: number | undefined;
  try {
    // O_NOFOLLOW | O_NONBLOCK: whatever was swapped in since the stat is neither followed nor waited on.
    fd = openSync(at(dir, name), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    if (fstatSync(fd).ino !== st.ino) return false;
    return Buffer.compare(readFileSync(fd), data) === 0;
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
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

export interface UpdateOptions {
  /**
   * Files written by an earlier pass that no secret writes any longer (a key gone from an exploded
   * secret): removed after the files are written, where they are still regular files of ours.
   */
  remove?: string[];
  /** Remembers, across passes, the directories already cleared of stale temp files. */
  cleaned?: Set<string>;
  hooks?: UpdateHooks;
}

/**
 * Rewrites the files of `files` whose content, mode or owner differs from what is on the volume,
 * removes `remove`, then writes the marker (when `markerFor` gives one), through directories
 * opened once each.
 */
export async function updateSecrets(root: string, files: OutputFile[], markerFor: MarkerFor, opts: UpdateOptions = {}): Promise<UpdateResult> {
  const changed: string[] = [];
  const failed: WriteFailure[] = [];
  let vol: Volume;
  try {
    vol = Volume.open(root, opts.cleaned, opts.hooks);
  } catch (e) {
    return { changed, failures: [writeFailure(root, e)] };
  }
  const synced = new Set<number>();
  try {
    // A secret's files change together or not at all: every changed file of one reference is
    // staged (written and fsynced beside its name) first; only when all of them are does one
    // commit rename them (volume.ts: a journal lets a kill midway be finished by the next pass).
    for (const group of Map.groupBy(files, (f) => f.ref).values()) {
      const staged: Staged[] = [];
      const paths: string[] = [];
      try {
        for (const f of group) {
          const { dir: rel, name } = splitPath(f.path);
          try {
            const dir = (await vol.dir(rel, true)) as number;
            if (unchanged(vol, dir, name, f.data, f.mode)) continue;
            if (vol.stat(dir, name)?.isDirectory()) throw Object.assign(new Error(`${f.path} is a directory`), { code: 'EISDIR' });
            staged.push({ dir: rel, tmp: vol.stage(dir, name, f.data, f.mode), name });
            paths.push(f.path);
          } catch (e) {
            throw Object.assign(new Error('staging failed'), { path: f.path, cause: e });
          }
        }
        vol.commit(staged);
        changed.push(...paths);
      } catch (e) {
        const { path, cause } = (e as { path?: string; cause?: unknown }).path !== undefined ? (e as { path: string; cause: unknown }) : { path: paths.at(-1) ?? group[0]!.path, cause: e };
        if ((e as { path?: string }).path !== undefined) vol.discard(staged);
        const f = writeFailure(path, cause);
        // Every file of the secret keeps its last content, so none of them is newer than the marker says.
        for (const other of group) failed.push({ path: other.path, failure: f });
      }
    }
    for (const path of opts.remove ?? []) {
      const { dir: rel, name } = splitPath(path);
      try {
        const dir = await vol.dir(rel, false);
        if (dir !== undefined && vol.removeOurFile(dir, name)) {
          changed.push(path);
          synced.add(dir);
        }
      } catch (e) {
        failed.push({ path, failure: writeFailure(path, e) });
      }
    }
    for (const d of synced) {
      try {
        vol.sync(d);
      } catch {
        // the data is written; only its durability across a node crash is in doubt, and a memory volume has none
      }
    }
    const marker = markerFor(changed, failed);
    if (marker !== undefined) {
      try {
        vol.replace(vol.root, MARKER_FILE, Buffer.from(`${JSON.stringify(marker, null, 2)}\n`), 0o444);
        vol.sync(vol.root);
      } catch (e) {
        failed.push({ path: MARKER_FILE, failure: writeFailure(MARKER_FILE, e) });
      }
    }
  } finally {
    vol.close();
  }
  return { changed, failures: [...new Set(failed.map((f) => f.failure))] };
}

/** The marker on the volume, read without following a link; undefined when absent or not ours. */
export async function readMarker(root: string): Promise<Marker | undefined> {
  let vol: Volume | undefined;
  try {
    vol = Volume.open(root);
    return readMarkerAt(vol.root);
  } catch {
    return undefined;
  } finally {
    vol?.close();
  }
}
