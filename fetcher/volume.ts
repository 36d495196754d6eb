// The secrets volume as both writers see it (the fetcher's one-shot write.ts and the refresh
// sidecar's update.ts). The volume is shared with the app and its default place, /tmp, is writable
// by every container of the pod: one running beside or before a writer may plant symbolic links,
// FIFOs or directories of its own, or swap a directory while a pass writes. So nothing here
// resolves a path by name twice: the root is opened once, every directory below it once, without
// following links (O_NOFOLLOW | O_DIRECTORY, which also refuses a FIFO without opening it), and
// everything in it is then done through that open directory (/proc/self/fd/<fd>/<name>, the
// kernel's openat for a program without openat). A directory renamed away meanwhile is still the
// one written to and a rename cannot leave the file system, so no write ever lands outside the
// volume; `moved` then tells whether every directory written is still where it was.
//
// Ownership: a directory below the root (a version, and every directory in it) must belong to the
// writer's uid. Another uid's directory (or one it swapped in) is refused: its owner could give it a group of its own with the setgid
// bit and read files of a group mode (0440). A directory the writer creates keeps the setgid bit
// it inherits from an fsGroup volume (the kubelet sets it on the root), so files below it get the
// fsGroup too, as files in the root do.
//
// The calls are synchronous: the writers do nothing else meanwhile, and a few hundred small
// operations on a memory-backed volume cost less CPU made directly than as promises through
// libuv's thread pool (an init container under a CPU limit waits for it).
//
// Versions: the files live in a version directory (`..<time>.<8 hex>`) that a writer fills
// completely before anyone can see it; `..data`, a symbolic link, names the current one, and each
// name the app reads at the top of the volume is a link through it (`password -> ..data/password`,
// `db -> ..data/db`). A refresh (or a fetcher run again) writes a whole new version, then swaps
// `..data` with one rename, then removes the old version: a kill at any moment leaves the app
// reading one whole version, the marker included (it lives in the version too). The writers follow
// only their own links: `..data` is used when it is a link of the writer's uid naming a version,
// and the version is then opened by that name like any directory (no following, owner checked).

import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  fsyncSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmdirSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
  type Stats,
} from 'node:fs';
import { DATA_LINK, MARKER_FILE } from './spec.js';

const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW, O_NONBLOCK, O_WRONLY, O_CREAT, O_EXCL } = constants;
/** The setgid bit (stat(2)); Node's fs.constants lacks it. */
const S_ISGID = 0o2000;
export const errno = (e: unknown): string | undefined => (e as NodeJS.ErrnoException)?.code;

/** The temp name both writers use: `.<name, cut to 200>.tmp-<pid>-<8 hex>` (fits NAME_MAX whenever the name does). */
export const TEMP_NAME = /^\..+\.tmp-\d+-[0-9a-f]{8}$/s;
const tempName = (name: string): string => `.${name.slice(0, 200)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;

/** A version directory: `..<UTC time to the millisecond>.<8 hex>`, as `..data` names it. */
export const VERSION_NAME = /^\.\.\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}_\d{3}\.[0-9a-f]{8}$/;
const versionName = (): string => `..${new Date().toISOString().replace(/[-T:.]/g, '_').slice(0, 23)}.${randomBytes(4).toString('hex')}`;
/** What the app-visible link of a top-level name points at. */
const linkTarget = (top: string): string => `${DATA_LINK}/${top}`;

/** Another container changed the volume in a way the writer refuses to write through. */
export class Tampered extends Error {}

export interface VolumeHooks {
  /** Called with each directory once it is open, before anything is written in it (tests swap it here). */
  afterOpen?: (relDir: string) => void | Promise<void>;
  /** Called before a file of a new version is written (tests fail a write here, as a full volume would). */
  beforeWrite?: (path: string) => void;
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

/** The top-level name of a path: the link the app reaches it by. */
export const topOf = (rel: string): string => rel.split('/', 1)[0]!;

/** The directory `rel` (as splitPath gives it) inside the version `version`, relative to the root. */
export const inVersion = (version: string, rel: string): string => (rel === '.' ? version : `${version}/${rel}`);

export class Volume {
  private readonly dirs = new Map<string, OpenDir>();
  private readonly uid = process.getuid?.();
  private readonly dev: number;
  private readonly gid: number;

  private constructor(
    private readonly rootFd: number,
    root: Stats,
    private readonly cleaned: Set<string>,
    readonly hooks: VolumeHooks,
  ) {
    this.dev = root.dev;
    this.gid = root.gid;
    this.dirs.set('.', { fd: rootFd, ino: root.ino });
  }

  /**
   * Opens the volume's root (the mount point: no container can rename it away). `cleaned` remembers,
   * across passes, the directories already cleared of what a killed run left (temp files and links,
   * versions no link names, links to names the current version lacks).
   */
  static async open(path: string, cleaned: Set<string> = new Set(), hooks: VolumeHooks = {}): Promise<Volume> {
    const fd = openSync(path, O_RDONLY | O_DIRECTORY | O_NONBLOCK);
    let vol: Volume;
    try {
      vol = new Volume(fd, fstatSync(fd), cleaned, hooks);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
    try {
      if (!cleaned.has('.')) {
        vol.clean('.', fd);
        await vol.sweep(await vol.current());
      }
    } catch (e) {
      vol.close();
      throw e;
    }
    return vol;
  }

  private ours(st: Stats): boolean {
    return this.uid === undefined || st.uid === this.uid;
  }

  /**
   * The current version's name: `..data` when it is a link of the writer's uid naming a version
   * directory of the writer's uid (opened, never followed). Undefined otherwise (a first run, or a
   * link another container planted).
   */
  async current(): Promise<string | undefined> {
    const st = statAt(this.rootFd, DATA_LINK);
    if (!st?.isSymbolicLink() || !this.ours(st)) return undefined;
    try {
      const target = readlinkSync(at(this.rootFd, DATA_LINK));
      if (!VERSION_NAME.test(target)) return undefined;
      return (await this.dir(target, false)) === undefined ? undefined : target;
    } catch {
      return undefined;
    }
  }

  /** A new, empty version directory of the writer's (no one else sees it until `publish`). */
  async createVersion(): Promise<string> {
    const name = versionName();
    await this.dir(name, true);
    return name;
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
    this.clean(rel, fd);
    await this.hooks.afterOpen?.(rel);
    return fd;
  }

  private check(rel: string, st: Stats): void {
    if (st.dev !== this.dev) throw new Tampered(`${rel} is not on the secrets volume`);
    if (!this.ours(st)) {
      throw new Tampered(`${rel} belongs to uid ${st.uid}, not to the writer's uid ${this.uid}; refusing to write into another user's directory`);
    }
    if ((st.mode & S_ISGID) !== 0 && st.gid !== this.gid) {
      throw new Tampered(`${rel} passes group ${st.gid} on to its files (setgid), not the volume's group ${this.gid}`);
    }
  }

  /** Temp files and links a killed run left: our name pattern, our uid. Nothing else: the directory may be the app's /tmp. */
  private clean(rel: string, fd: number): void {
    if (this.cleaned.has(rel)) return;
    this.cleaned.add(rel);
    for (const entry of readdirSync(at(fd, '.'), { withFileTypes: true })) {
      if (!(entry.isFile() || entry.isSymbolicLink()) || !TEMP_NAME.test(entry.name)) continue;
      const st = statAt(fd, entry.name);
      if (st !== undefined && (st.isFile() || st.isSymbolicLink()) && this.ours(st)) unlinkAt(fd, entry.name);
    }
  }

  /**
   * Removes what no longer belongs to the current version `keep`: version directories of ours it
   * is not (a killed run's, or the one it replaced), and links of ours to names it lacks (a file of
   * a removed key, or a link made for a version that was never published).
   */
  async sweep(keep: string | undefined): Promise<void> {
    const names = keep === undefined ? new Set<string>() : new Set(readdirSync(at((await this.dir(keep, false)) as number, '.')));
    for (const entry of readdirSync(at(this.rootFd, '.'), { withFileTypes: true })) {
      const st = statAt(this.rootFd, entry.name);
      if (st === undefined || !this.ours(st)) continue;
      if (st.isDirectory() && VERSION_NAME.test(entry.name) && entry.name !== keep) this.removeTree(entry.name);
      else if (st.isSymbolicLink() && entry.name !== DATA_LINK) {
        const target = readlinkSync(at(this.rootFd, entry.name));
        if (target.startsWith(`${DATA_LINK}/`) && !names.has(target.slice(DATA_LINK.length + 1))) unlinkAt(this.rootFd, entry.name);
      }
    }
  }

  /**
   * Removes the directory `rel` and everything in it, never following a link: through the
   * directory this pass opened when it did (so a version moved away meanwhile is still emptied),
   * else by name.
   */
  removeTree(rel: string): void {
    const { dir: parentRel, name } = splitPath(rel);
    const parent = this.dirs.get(parentRel)?.fd;
    const empty = (fd: number): void => {
      const st = fstatSync(fd);
      if (st.dev !== this.dev || !this.ours(st)) return;
      for (const e of readdirSync(at(fd, '.'), { withFileTypes: true })) {
        if (!e.isDirectory()) {
          unlinkAt(fd, e.name);
          continue;
        }
        const sub = openDirAt(fd, e.name, rel);
        if (sub === undefined) continue;
        try {
          empty(sub);
        } finally {
          closeSync(sub);
        }
        rmdirQuietly(fd, e.name);
      }
    };
    const open = this.dirs.get(rel);
    try {
      // Deepest first, each directory of it this pass opened, wherever it was moved meanwhile.
      const under = [...this.dirs].filter(([r]) => r.startsWith(`${rel}/`)).sort(([a], [b]) => b.length - a.length);
      for (const [, d] of under) empty(d.fd);
      if (open !== undefined) empty(open.fd);
      else if (parent !== undefined) {
        const fd = openDirAt(parent, name, rel);
        if (fd !== undefined) {
          try {
            empty(fd);
          } finally {
            closeSync(fd);
          }
        }
      }
    } catch {
      // a link or another user's directory in the way: left as it is
    }
    if (parent !== undefined && (open === undefined || statAt(parent, name)?.ino === open.ino)) rmdirQuietly(parent, name);
    for (const [r, d] of this.dirs) {
      if (r !== rel && !r.startsWith(`${rel}/`)) continue;
      closeSync(d.fd);
      this.dirs.delete(r);
    }
  }

  /** Every regular file of ours under the directory `rel`, relative to it (the marker at its top left out). */
  async files(rel: string): Promise<string[]> {
    const out: string[] = [];
    const walk = async (sub: string): Promise<void> => {
      let fd: number | undefined;
      try {
        fd = await this.dir(sub === '' ? rel : `${rel}/${sub}`, false);
      } catch {
        return; // not ours: nothing of it is carried
      }
      if (fd === undefined) return;
      for (const e of readdirSync(at(fd, '.'), { withFileTypes: true })) {
        const path = sub === '' ? e.name : `${sub}/${e.name}`;
        if (e.isDirectory()) await walk(path);
        else if (e.isFile() && path !== MARKER_FILE && !TEMP_NAME.test(e.name)) {
          const st = statAt(fd, e.name);
          if (st?.isFile() && this.ours(st)) out.push(path);
        }
      }
    };
    await walk('');
    return out;
  }

  /** The open directory of `path` inside the version `version` (created as needed), and its last name. */
  async dirOf(version: string, path: string): Promise<{ fd: number; name: string }> {
    const { dir: rel, name } = splitPath(path);
    return { fd: (await this.dir(inVersion(version, rel), true)) as number, name };
  }

  /** Whether `path` in the version `version` is a regular file of ours. */
  async isOurFile(version: string, path: string): Promise<boolean> {
    if (!insideVolume(path)) return false;
    const { dir: rel, name } = splitPath(path);
    const dir = await this.dir(inVersion(version, rel), false).catch(() => undefined);
    const st = dir === undefined ? undefined : statAt(dir, name);
    return st !== undefined && st.isFile() && this.ours(st);
  }

  /** Hard-links `paths` of the version `from` into the version `to` (those `from` has as regular files). */
  async carry(from: string, to: string, paths: Iterable<string>): Promise<void> {
    for (const path of paths) {
      const { dir: rel, name } = splitPath(path);
      const src = await this.dir(inVersion(from, rel), false).catch(() => undefined);
      if (src === undefined || !statAt(src, name)?.isFile()) continue;
      this.link(src, (await this.dirOf(to, path)).fd, name);
    }
  }

  /** A new file in the open directory, fsynced (O_EXCL: nothing already there is followed or reused). */
  create(dirFd: number, name: string, data: Uint8Array, mode: number): void {
    const fd = openSync(at(dirFd, name), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
    try {
      writeFileSync(fd, data);
      fchmodSync(fd, mode); // the umask may have taken bits away at open
      fsyncSync(fd);
    } catch (e) {
      closeSync(fd);
      unlinkAt(dirFd, name);
      throw e;
    }
    closeSync(fd);
  }

  /** Temp file in the open directory, fsync, rename over the name: readers see the old or the whole new file. */
  replace(dirFd: number, name: string, data: Uint8Array, mode: number): void {
    const tmp = tempName(name);
    this.create(dirFd, tmp, data, mode);
    try {
      renameSync(at(dirFd, tmp), at(dirFd, name));
    } catch (e) {
      unlinkAt(dirFd, tmp);
      throw e;
    }
  }

  /** The file `name` of one open directory as `name` in another too (a hard link: same inode, no copy). */
  link(fromDirFd: number, toDirFd: number, name: string): void {
    linkSync(at(fromDirFd, name), at(toDirFd, name));
  }

  /**
   * Makes `top` at the root the link the app reads it by (`top -> ..data/top`), replacing whatever
   * else is there (a link, file or FIFO, never followed), except a directory. Whether it changed.
   */
  linkTop(top: string): boolean {
    const st = statAt(this.rootFd, top);
    if (st?.isSymbolicLink() && this.ours(st) && readlinkSync(at(this.rootFd, top)) === linkTarget(top)) return false;
    if (st?.isDirectory()) throw new Tampered(`${top} is a directory`);
    const tmp = tempName(top);
    symlinkSync(linkTarget(top), at(this.rootFd, tmp));
    try {
      renameSync(at(this.rootFd, tmp), at(this.rootFd, top));
    } catch (e) {
      unlinkAt(this.rootFd, tmp);
      throw e;
    }
    return true;
  }

  /**
   * Makes the complete version `version` the current one: checks it is still where it was written,
   * makes the links of its top-level names, then swaps `..data` with one rename, then removes the
   * old version and the links of names it no longer has. Before the swap the app reads the old
   * version whole; after it, the new one.
   */
  async publish(version: string): Promise<void> {
    const vfd = this.dirs.get(version)?.fd;
    if (vfd === undefined) throw new Error(`${version} is not open`);
    const moved = this.moved(version);
    if (moved !== undefined) throw new Tampered(`${moved} was moved away while it was being written (another container changed the secrets volume)`);
    for (const [rel, d] of this.dirs) if (rel === version || rel.startsWith(`${version}/`)) fsyncSync(d.fd);
    // A new name's link points at nothing until the swap: the app sees it appear with the rest.
    for (const top of readdirSync(at(vfd, '.')).sort()) this.linkTop(top);
    const tmp = tempName(DATA_LINK);
    symlinkSync(version, at(this.rootFd, tmp));
    try {
      renameSync(at(this.rootFd, tmp), at(this.rootFd, DATA_LINK));
    } catch (e) {
      unlinkAt(this.rootFd, tmp);
      throw errno(e) === 'EISDIR' ? new Tampered(`${DATA_LINK} is a directory`) : e;
    }
    fsyncSync(this.rootFd);
    await this.sweep(version);
  }

  /** `name` in the open directory, never followed (a link is described as a link). */
  stat(dirFd: number, name: string): Stats | undefined {
    return statAt(dirFd, name);
  }

  unlink(dirFd: number, name: string): void {
    unlinkAt(dirFd, name);
  }

  /** Whether every directory opened under `under` is still at its name (no container moved it away meanwhile); the first one that is not. */
  moved(under: string): string | undefined {
    for (const [rel, d] of this.dirs) {
      if (d.parent === undefined || d.name === undefined || (rel !== under && !rel.startsWith(`${under}/`))) continue;
      const parent = this.dirs.get(d.parent);
      const st = parent === undefined ? undefined : statAt(parent.fd, d.name);
      if (st === undefined || !st.isDirectory() || st.ino !== d.ino) return rel;
    }
    return undefined;
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

function rmdirQuietly(dirFd: number, name: string): void {
  try {
    rmdirSync(at(dirFd, name));
  } catch {
    // not empty (something appeared meanwhile), or gone
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
