// Values -> files for the refresh sidecar: a pass that changed a file writes a new version of the
// volume (volume.ts: a version directory published by one rename of `..data`), in which the files
// whose content (or mode, or owner) is unchanged are the same inodes as before (hard links) and
// the marker is written beside the files it describes; a pass that changed nothing rewrites only
// the marker, in place. Everything goes through the volume's open directories (no path is
// resolved by name twice, a link or another user's directory where a directory should be is
// refused, and a link or anything else where the app's link to a file should be is replaced,
// never followed).
//
// A secret's files change together or not at all: a file of a secret that cannot be written keeps
// all of that secret's files at their last version; a kill at any point leaves the app reading
// one whole version, and never a part of a file.

import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import { failure, type Failure } from './errors.js';
import type { OutputFile } from './render.js';
import { at, errno, inVersion, splitPath, Tampered, topOf, Volume, type VolumeHooks } from './volume.js';
import { MARKER_FILE } from './spec.js';
import { markerBytes, readMarkerAt, type Marker } from './write.js';

export interface UpdateResult {
  /** Paths (relative to the mount) rewritten in this pass. */
  changed: string[];
  /** One per file or directory that could not be written; those files keep their last content. */
  failures: Failure[];
  /** Whether the marker `markerFor` gave is on the volume (false: the volume, marker included, is as it was). */
  markerWritten: boolean;
}

export interface WriteFailure {
  path: string;
  failure: Failure;
}

/** Decides the marker once the files are written: undefined leaves the marker as it is. */
export type MarkerFor = (changed: string[], failed: WriteFailure[]) => Marker | undefined;

export type UpdateHooks = VolumeHooks;

/** Whether `path` in the version `version` already is a regular file of ours with exactly this content and mode. */
async function unchanged(vol: Volume, version: string, path: string, data: Uint8Array, mode: number): Promise<boolean> {
  const { dir: rel, name } = splitPath(path);
  let fd: number | undefined;
  try {
    const dir = await vol.dir(inVersion(version, rel), false);
    if (dir === undefined) return false;
    const st = vol.stat(dir, name);
    const uid = process.getuid?.();
    if (st === undefined || !st.isFile() || (st.mode & 0o7777) !== mode || st.size !== data.byteLength || (uid !== undefined && st.uid !== uid)) return false;
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
 * Brings the volume to `files`: when a file's content, mode or owner differs from the current
 * version, or `remove` names one of its files, a new version (unchanged files carried over) with
 * the marker `markerFor` gives, published at once; otherwise the app's links are repaired where
 * another container replaced one, and the marker is rewritten in place.
 */
export async function updateSecrets(root: string, files: OutputFile[], markerFor: MarkerFor, opts: UpdateOptions = {}): Promise<UpdateResult> {
  const changed: string[] = [];
  const failed: WriteFailure[] = [];
  let vol: Volume;
  try {
    vol = await Volume.open(root, opts.cleaned, opts.hooks);
  } catch (e) {
    return { changed, failures: [writeFailure(root, e)], markerWritten: false };
  }
  let next: string | undefined;
  let markerWritten = false;
  try {
    const current = await vol.current();
    // The app reaches a file through the link of its top-level name: a directory another
    // container put there instead cannot be replaced, and the secrets below it keep their last version.
    const blocked = new Map<string, Error>();
    for (const top of new Set(files.map((f) => topOf(f.path)))) {
      if (vol.stat(vol.root, top)?.isDirectory()) blocked.set(top, new Tampered(`${top} is a directory`));
    }
    const groups: OutputFile[][] = [];
    for (const group of Map.groupBy(files, (f) => f.ref).values()) {
      const stuck = group.find((f) => blocked.has(topOf(f.path)));
      if (stuck !== undefined) {
        const f = writeFailure(stuck.path, blocked.get(topOf(stuck.path)));
        for (const other of group) failed.push({ path: other.path, failure: f });
        continue;
      }
      const differ: OutputFile[] = [];
      for (const f of group) if (current === undefined || !(await unchanged(vol, current, f.path, f.data, f.mode))) differ.push(f);
      if (differ.length > 0) groups.push(differ);
    }
    const removed = new Set(opts.remove ?? []);
    const removing: string[] = [];
    for (const path of removed) if (current !== undefined && (await vol.isOurFile(current, path))) removing.push(path);

    if (groups.length > 0 || removing.length > 0 || current === undefined) {
      const version = await vol.createVersion();
      next = version;
      const writing = new Set(groups.flat().map((f) => f.path));
      if (current !== undefined) await vol.carry(current, version, (await vol.files(current)).filter((p) => !writing.has(p) && !removed.has(p)));
      for (const group of groups) {
        const done: string[] = [];
        try {
          for (const f of group) {
            vol.hooks.beforeWrite?.(f.path);
            const { fd, name } = await vol.dirOf(version, f.path);
            if (vol.stat(fd, name) !== undefined) throw Object.assign(new Error(`${f.path} is a directory`), { code: 'EISDIR' });
            vol.create(fd, name, f.data, f.mode);
            done.push(f.path);
          }
          changed.push(...done);
        } catch (e) {
          // Every file of the secret keeps its last content, so none of them is newer than the marker says.
          for (const path of done) {
            const { fd, name } = await vol.dirOf(version, path);
            vol.unlink(fd, name);
          }
          if (current !== undefined) await vol.carry(current, version, group.map((f) => f.path));
          const f = writeFailure(group[done.length]?.path ?? group[0]!.path, e);
          for (const other of group) failed.push({ path: other.path, failure: f });
        }
      }
      changed.push(...removing);
      if (changed.length > 0 || current === undefined) {
        const marker = markerFor(changed, failed);
        if (marker !== undefined) vol.create((await vol.dir(version, false)) as number, MARKER_FILE, markerBytes(marker), 0o444);
        else if (current !== undefined) await vol.carry(current, version, [MARKER_FILE]);
        try {
          await vol.publish(version);
          next = undefined;
        } catch (e) {
          // Nothing changed for the app: every file, and the marker, stay at the last version.
          await vol.sweep(current).catch(() => undefined);
          const f = writeFailure(root, e);
          changed.length = 0;
          return { changed, failures: [...new Set([...failed.map((w) => w.failure), f])], markerWritten: false };
        }
        return { changed, failures: [...new Set(failed.map((f) => f.failure))], markerWritten: marker !== undefined };
      }
    }

    // Nothing to write: the links another container replaced are made again, and the marker is rewritten in place.
    if (current !== undefined) {
      try {
        vol.linkTop(MARKER_FILE);
      } catch (e) {
        failed.push({ path: MARKER_FILE, failure: writeFailure(MARKER_FILE, e) });
      }
    }
    for (const top of new Set(files.filter((f) => !blocked.has(topOf(f.path))).map((f) => topOf(f.path)))) {
      try {
        if (vol.linkTop(top)) changed.push(...files.filter((f) => topOf(f.path) === top).map((f) => f.path));
      } catch (e) {
        for (const f of files) if (topOf(f.path) === top) failed.push({ path: f.path, failure: writeFailure(f.path, e) });
      }
    }
    const marker = markerFor(changed, failed);
    if (marker !== undefined && current !== undefined) {
      try {
        const dir = (await vol.dir(current, false)) as number;
        vol.replace(dir, MARKER_FILE, markerBytes(marker), 0o444);
        markerWritten = true;
        vol.sync(dir);
      } catch (e) {
        failed.push({ path: MARKER_FILE, failure: writeFailure(MARKER_FILE, e) });
      }
    }
  } catch (e) {
    failed.push({ path: root, failure: writeFailure(root, e) });
  } finally {
    if (next !== undefined) vol.removeTree(next);
    vol.close();
  }
  return { changed, failures: [...new Set(failed.map((f) => f.failure))], markerWritten };
}

/** The marker on the volume, read without following a link; undefined when absent or not ours. */
export async function readMarker(root: string): Promise<Marker | undefined> {
  let vol: Volume | undefined;
  try {
    vol = await Volume.open(root);
    const current = await vol.current();
    return current === undefined ? undefined : readMarkerAt((await vol.dir(current, false)) as number);
  } catch {
    return undefined;
  } finally {
    vol?.close();
  }
}
