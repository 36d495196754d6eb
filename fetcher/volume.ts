// The secrets volume as both writers see it (the fetcher's one-shot write.ts and the refresh
// sidecar's update.ts). The volume is shared with the app and its default place, /tmp, is writable
// by every container of the pod: one running beside or before a writer may plant symbolic links,
// FIFOs or directories of its own, or swap a directory while a pass writes. So nothing here
// resolves a path by name twice: the root is opened once, every directory below it once, without
// following links (O_NOFOLLOW | O_DIRECTORY, which also refuses a FIFO without opening it), and
// everything in it is then done through that open directory (/proc/self/fd/<fd>/<name>, the
// kernel's openat for a program without openat). A directory renamed away meanwhile is still the
// one written to and a rename cannot leave the file system, so no write ever lands outside the
// volume; `verify` then tells whether every directory and file written is still where the app
// looks for it.
//
// Ownership: a directory below the root must belong to the writer's uid. Another uid's directory
// (or one it swapped in) is refused: its owner could give it a group of its own with the setgid
// bit and read files of a group mode (0440). A directory the writer creates keeps the setgid bit
// it inherits from an fsGroup volume (the kubelet sets it on the root), so files below it get the
// fsGroup too, as files in the root do.
//
// The calls are synchronous: the writers do nothing else meanwhile, and a few hundred small
// operations on a memory-backed volume cost less CPU made directly than as promises through
// libuv's thread pool (an init container under a CPU limit waits for it).

import { randomBytes } from 'node:crypto';
import { JOURNAL_FILE } from './spec.js';
import {
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmdirSync,
  unlinkSync,
  writeFileSync,
  type Stats,
} from 'node:fs';

const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW, O_NONBLOCK, O_WRONLY, O_CREAT, O_EXCL } = constants;
/** The setgid bit (stat(2)); Node's fs.constants lacks it. */
const S_ISGID = 0o2000;
export const errno = (e: unknown): string | undefined => (e as NodeJS.ErrnoException)?.code;

/** The temp name both writers use: `.<name, cut to 200>.tmp-<pid>-<8 hex>` (fits NAME_MAX whenever the name does). */
export const TEMP_NAME = /^\..+\.tmp-\d+-[0-9a-f]{8}$/s;
const tempName = (name: string): string => `.${name.slice(0, 200)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;

/** Another container changed the volume in a way the writer refuses to write through. */
export class Tampered extends Error {}

export interface VolumeHooks {
  /** Called with each directory once it is open, before anything is written in it (tests swap it here). */
  afterOpen?: (relDir: string) => void | Promise<void>;
  /** Called before the i-th rename of a commit (0 is right after its journal is written); tests stop a pass here as a kill would. */
  beforeRename?: (i: number) => void;
}

/**
 * The journal of a commit in progress (volume.ts `commit`): which staged temp file becomes which
 * file. Written (atomically) before the first rename and removed after the last, so a writer killed
 * in between finishes the renames when it opens the volume again: a secret's files change
 * together, whatever moment the kill came.
 */
export { JOURNAL_FILE };

export interface Staged {
  /** The directory, relative to the root. */
  dir: string;
  tmp: string;
  name: string;
}

interface OpenDir {
  fd: number;
  ino: number;
  parent?: string;
  name?: string;
}

/** Whether `rel` names something inside the volume: no empty, `.` or `..` segment (a forged marker may list anything). */
export const insideVolume = (rel: string): boolean => rel !== '' && rel.split('/').every((s) => s !== '' && s !== '.' && s !== '..');

export const splitPath = (rel: string): { dir: string; name: string } => {
  const slash = rel.lastIndexOf('/');
  return slash < 0 ? { dir: '.', name: rel } : { dir: rel.slice(0, slash), name: rel.slice(slash + 1) };
};

export class Volume {
  private readonly dirs = new Map<string, OpenDir>();
  /** Directories this pass created, in order (a failed one-shot pass removes them again). */
  readonly created: string[] = [];
  private readonly uid = process.getuid?.();
  private readonly dev: number;
  private readonly gid: number;

  private constructor(
    private readonly rootFd: number,
    root: Stats,
    private readonly cleaned: Set<string>,
    private readonly hooks: VolumeHooks,
  ) {
    this.dev = root.dev;
    this.gid = root.gid;
    this.dirs.set('.', { fd: rootFd, ino: root.ino });
    // First the renames a killed pass left to do: its staged files must not be cleaned away as stale.
    this.rollForward();
    this.clean('.', rootFd);
  }

  /** Finishes the commit a killed pass left (its journal), then removes the journal. */
  private rollForward(): void {
    if (statAt(this.rootFd, JOURNAL_FILE) === undefined) return;
    let entries: Staged[] = [];
    let jfd: number | undefined;
    try {
      jfd = openSync(at(this.rootFd, JOURNAL_FILE), O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
      const st = fstatSync(jfd);
      // Only a regular file of ours: another uid cannot make this writer rename anything.
      if (st.isFile() && (this.uid === undefined || st.uid === this.uid) && st.size <= 1024 * 1024) {
        const parsed = JSON.parse(readFileSync(jfd, 'utf8')) as unknown;
        if (Array.isArray(parsed)) entries = parsed as Staged[];
      }
    } catch {
      // a link, a FIFO, or not JSON (a journal is renamed into place whole): not ours
    } finally {
      if (jfd !== undefined) closeSync(jfd);
    }
    const touched = new Set<number>();
    const opened: number[] = [];
    try {
      for (const e of entries) {
        if (typeof e?.tmp !== 'string' || typeof e.name !== 'string' || typeof e.dir !== 'string' || !TEMP_NAME.test(e.tmp)) continue;
        if (!insideVolume(e.name) || e.name.includes('/') || (e.dir !== '.' && !insideVolume(e.dir))) continue;
        let fd = this.rootFd;
        try {
          for (const segment of e.dir === '.' ? [] : e.dir.split('/')) {
            const next = openDirAt(fd, segment, e.dir);
            if (next === undefined) throw new Tampered(`${e.dir} is gone`);
            opened.push(next);
            const dst = fstatSync(next);
            if (dst.dev !== this.dev || (this.uid !== undefined && dst.uid !== this.uid)) throw new Tampered(`${e.dir} is not ours`);
            fd = next;
          }
          const tmp = statAt(fd, e.tmp);
          if (!tmp?.isFile() || (this.uid !== undefined && tmp.uid !== this.uid)) continue;
          renameSync(at(fd, e.tmp), at(fd, e.name));
          touched.add(fd);
        } catch {
          // this one cannot be finished (its directory was changed): it keeps its last content
        }
      }
      for (const fd of touched) fsyncSync(fd);
    } finally {
      for (const fd of opened) closeSync(fd);
    }
    unlinkAt(this.rootFd, JOURNAL_FILE);
    fsyncSync(this.rootFd);
  }

  /**
   * Opens the volume's root (the mount point: no container can rename it away). `cleaned` remembers,
   * across passes, the directories already cleared of the temp files a killed run left.
   */
  static open(path: string, cleaned: Set<string> = new Set(), hooks: VolumeHooks = {}): Volume {
    const fd = openSync(path, O_RDONLY | O_DIRECTORY | O_NONBLOCK);
    try {
      return new Volume(fd, fstatSync(fd), cleaned, hooks);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  /** The open directory `rel` (relative to the root), created (mode 0755, keeping an inherited setgid) when `create`. */
  async dir(rel: string, create: boolean): Promise<number | undefined> {
    const have = this.dirs.get(rel);
    if (have !== undefined) return have.fd;
    if (!insideVolume(rel)) throw new Tampered(`${rel} is not a path inside the volume`);
    const { dir: parentRel, name } = splitPath(rel);
    const parent = await this.dir(parentRel, create);
    if (parent === undefined) return undefined;
    let fd = openDirAt(parent, name, rel);
    let made = false;
    if (fd === undefined) {
      if (!create) return undefined;
      try {
        mkdirSync(at(parent, name), { mode: 0o755 });
        made = true;
      } catch (e) {
        if (errno(e) !== 'EEXIST') throw e;
      }
      fd = openDirAt(parent, name, rel);
      if (fd === undefined) throw new Tampered(`${rel} disappeared while it was being created`);
    }
    let st: Stats;
    try {
      st = fstatSync(fd);
      this.check(rel, st);
      // The umask may have taken bits away (app containers may run as another uid); the setgid bit
      // an fsGroup volume passes on stays, so files below get the fsGroup.
      if (made) {
        fchmodSync(fd, 0o755 | (st.mode & S_ISGID));
        st = fstatSync(fd);
      }
    } catch (e) {
      closeSync(fd);
      throw e;
    }
    this.dirs.set(rel, { fd, ino: st.ino, parent: parentRel, name });
    if (made) this.created.push(rel);
    this.clean(rel, fd);
    await this.hooks.afterOpen?.(rel);
    return fd;
  }

  private check(rel: string, st: Stats): void {
    if (st.dev !== this.dev) throw new Tampered(`${rel} is not on the secrets volume`);
    if (this.uid !== undefined && st.uid !== this.uid) {
      throw new Tampered(`${rel} belongs to uid ${st.uid}, not to the writer's uid ${this.uid}; refusing to write into another user's directory`);
    }
    if ((st.mode & S_ISGID) !== 0 && st.gid !== this.gid) {
      throw new Tampered(`${rel} passes group ${st.gid} on to its files (setgid), not the volume's group ${this.gid}`);
    }
  }

  /** Temp files a killed run left: our name pattern, our uid, regular files. Nothing else: the directory may be the app's /tmp. */
  private clean(rel: string, fd: number): void {
    if (this.cleaned.has(rel)) return;
    this.cleaned.add(rel);
    for (const entry of readdirSync(at(fd, '.'), { withFileTypes: true })) {
      if (!entry.isFile() || !TEMP_NAME.test(entry.name)) continue;
      const st = statAt(fd, entry.name);
      if (st?.isFile() && (this.uid === undefined || st.uid === this.uid)) unlinkAt(fd, entry.name);
    }
  }

  /** Temp file in the open directory, fsynced, not yet renamed: one part of a commit. Returns its name. */
  stage(dirFd: number, name: string, data: Uint8Array, mode: number): string {
    const tmp = tempName(name);
    // O_EXCL|O_CREAT never follows or reuses whatever is already there.
    const fd = openSync(at(dirFd, tmp), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
    try {
      writeFileSync(fd, data);
      fchmodSync(fd, mode); // the umask may have taken bits away at open
      fsyncSync(fd);
    } catch (e) {
      closeSync(fd);
      unlinkAt(dirFd, tmp);
      throw e;
    }
    closeSync(fd);
    return tmp;
  }

  /** Temp file in the open directory, fsync, rename over the name: readers see the old or the whole new file. Returns its inode. */
  replace(dirFd: number, name: string, data: Uint8Array, mode: number): number {
    const tmp = this.stage(dirFd, name, data, mode);
    try {
      const ino = lstatSync(at(dirFd, tmp)).ino;
      // rename replaces a link, FIFO or file at `name` itself; it fails on a directory.
      renameSync(at(dirFd, tmp), at(dirFd, name));
      return ino;
    } catch (e) {
      unlinkAt(dirFd, tmp);
      throw e;
    }
  }

  /** Removes staged files that will not be committed. */
  discard(staged: Staged[]): void {
    for (const st of staged) {
      const d = this.dirs.get(st.dir);
      if (d !== undefined) unlinkAt(d.fd, st.tmp);
    }
  }

  /**
   * Renames every staged file over its name, as one commit: the journal first (so a kill midway is
   * finished by the next open), then the renames, then the journal is removed. A rename that fails
   * (another container put a directory there) leaves the journal: the next open finishes or drops
   * what is left.
   */
  commit(staged: Staged[]): void {
    if (staged.length === 0) return;
    this.replace(this.rootFd, JOURNAL_FILE, Buffer.from(JSON.stringify(staged)), 0o400);
    fsyncSync(this.rootFd);
    const touched = new Set<number>();
    staged.forEach((st, i) => {
      this.hooks.beforeRename?.(i);
      const d = this.dirs.get(st.dir);
      if (d === undefined) throw new Error(`${st.dir} is not open`);
      renameSync(at(d.fd, st.tmp), at(d.fd, st.name));
      touched.add(d.fd);
    });
    for (const fd of touched) fsyncSync(fd);
    unlinkAt(this.rootFd, JOURNAL_FILE);
  }

  /** `name` in the open directory, never followed (a link is described as a link). */
  stat(dirFd: number, name: string): Stats | undefined {
    return statAt(dirFd, name);
  }

  /** Removes `name` if it is a regular file of ours (an app's file, link or directory under that name is left). */
  removeOurFile(dirFd: number, name: string): boolean {
    const st = statAt(dirFd, name);
    if (st === undefined || !st.isFile() || (this.uid !== undefined && st.uid !== this.uid)) return false;
    unlinkAt(dirFd, name);
    return true;
  }

  unlink(dirFd: number, name: string): void {
    unlinkAt(dirFd, name);
  }

  /** Whether every directory opened is still at its name (no container moved it away meanwhile); the first one that is not. */
  moved(): string | undefined {
    for (const [rel, d] of this.dirs) {
      if (d.parent === undefined || d.name === undefined) continue;
      const parent = this.dirs.get(d.parent);
      const st = parent === undefined ? undefined : statAt(parent.fd, d.name);
      if (st === undefined || !st.isDirectory() || st.ino !== d.ino) return rel;
    }
    return undefined;
  }

  /** Removes the directories this pass created (deepest first), where they are empty. */
  removeCreated(): void {
    for (const rel of [...this.created].reverse()) {
      const d = this.dirs.get(rel);
      const parent = d?.parent === undefined ? undefined : this.dirs.get(d.parent);
      if (parent === undefined || d?.name === undefined) continue;
      const st = statAt(parent.fd, d.name);
      if (st?.ino !== d.ino) continue;
      try {
        rmdirSync(at(parent.fd, d.name));
      } catch {
        // not empty, or gone
      }
    }
  }

  sync(dirFd: number): void {
    fsyncSync(dirFd);
  }

  get root(): number {
    return this.rootFd;
  }

  close(): void {
    for (const d of this.dirs.values()) {
      try {
        closeSync(d.fd);
      } catch {
        // already closed
      }
    }
    this.dirs.clear();
  }
}

/** A path through an open directory: the kernel resolves it from the directory itself, never by name. */
export const at = (dirFd: number, name: string): string => `/proc/self/fd/${dirFd}/${name}`;

function statAt(dirFd: number, name: string): Stats | undefined {
  try {
    return lstatSync(at(dirFd, name));
  } catch {
    return undefined;
  }
}

function unlinkAt(dirFd: number, name: string): void {
  try {
    unlinkSync(at(dirFd, name));
  } catch (e) {
    if (errno(e) !== 'ENOENT') throw e;
  }
}

function openDirAt(parent: number, name: string, rel: string): number | undefined {
  try {
    // O_NONBLOCK as well: whatever is there, opening it never waits.
    return openSync(at(parent, name), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK);
  } catch (e) {
    const code = errno(e);
    if (code === 'ENOENT') return undefined;
    // With O_DIRECTORY, Linux reports a link as ENOTDIR (ELOOP without it).
    if (code === 'ELOOP' || (code === 'ENOTDIR' && statAt(parent, name)?.isSymbolicLink())) {
      throw new Tampered(`${rel} is a symbolic link; refusing to write through it`);
    }
    if (code === 'ENOTDIR') throw new Tampered(`${rel} exists and is not a directory`);
    throw e;
  }
}
