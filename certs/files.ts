// Writing certificate files.
//
// writeServingDir lays the files out the way the kubelet lays out a Secret volume, so the pair
// changes atomically and the webhook's reloader (which watches for exactly this) never sees a new
// certificate with an old key:
//   DIR/..2026_03_01_12_00_00.123456789/{tls.crt,tls.key,ca.crt}   one directory per version
//   DIR/..data -> ..2026_03_01_...                                  swapped by rename(2)
//   DIR/tls.crt -> ..data/tls.crt   (and tls.key, ca.crt)           stable paths to configure

import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, mkdir, open, readFile, readdir, readlink, rename, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { CertsError } from './errors.js';

export const FILES = { cert: 'tls.crt', key: 'tls.key', ca: 'ca.crt' } as const;
const DATA_LINK = '..data';

async function writeSynced(path: string, content: string, mode: number, exclusive: boolean): Promise<void> {
  const flags = constants.O_WRONLY | constants.O_CREAT | (exclusive ? constants.O_EXCL : constants.O_TRUNC);
  const fh = await open(path, flags, mode);
  try {
    await fh.writeFile(content, 'utf8');
    await fh.chmod(mode); // the umask may have narrowed or the file may have existed
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function ioError(what: string, err: unknown): CertsError {
  const e = err as NodeJS.ErrnoException;
  return new CertsError('CERTS_IO', `${what}: ${e.code ?? ''} ${e.message}`.trim(), { cause: err });
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * `certs generate --out DIR`: ca.crt, tls.crt (0644) and tls.key (0600), each written to a temp
 * file, synced and renamed into place. Refuses to replace existing files unless `force`.
 */
export async function writeGeneratedFiles(
  dir: string,
  files: { caCert: string; cert: string; key: string },
  force: boolean,
): Promise<string[]> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o755 });
  } catch (err) {
    throw ioError(`cannot create directory ${dir}`, err);
  }
  const plan: Array<[string, string, number]> = [
    [FILES.ca, files.caCert, 0o644],
    [FILES.cert, files.cert, 0o644],
    [FILES.key, files.key, 0o600],
  ];
  if (!force) {
    const present: string[] = [];
    for (const [name] of plan) if (await exists(join(dir, name))) present.push(name);
    if (present.length > 0) {
      throw new CertsError('CERTS_USAGE', `${dir} already holds ${present.join(', ')}; pass --force to replace them`);
    }
  }
  const written: string[] = [];
  const suffix = `.tmp-${randomBytes(4).toString('hex')}`;
  try {
    // All temp files first, then the renames: a failure leaves the old files untouched.
    for (const [name, content, mode] of plan) await writeSynced(join(dir, name + suffix), content, mode, true);
    for (const [name] of plan) {
      await rename(join(dir, name + suffix), join(dir, name));
      written.push(join(dir, name));
    }
    await syncDir(dir);
  } catch (err) {
    await Promise.all(plan.map(([name]) => rm(join(dir, name + suffix), { force: true })));
    throw ioError(`cannot write certificate files into ${dir}`, err);
  }
  return written;
}

/** What the serving directory currently holds, or undefined when it holds no complete version. */
export async function readServingDir(dir: string): Promise<{ cert: string; key: string; ca: string } | undefined> {
  try {
    const [cert, key, ca] = await Promise.all(
      [FILES.cert, FILES.key, FILES.ca].map((f) => readFile(join(dir, DATA_LINK, f), 'utf8')),
    );
    return { cert: cert!, key: key!, ca: ca! };
  } catch {
    return undefined;
  }
}

function versionName(now: Date): string {
  const iso = now.toISOString().replace(/[-:T]/g, '_').replace(/\.(\d+)Z$/, '.$1');
  return `..${iso}_${randomBytes(3).toString('hex')}`;
}

/**
 * Puts cert/key/CA into `dir` as one atomic version (see the file comment). Does nothing when the
 * directory already serves exactly this content; returns whether it wrote.
 */
export async function writeServingDir(
  dir: string,
  material: { cert: string; key: string; caBundle: string },
  now: Date = new Date(),
): Promise<boolean> {
  const current = await readServingDir(dir);
  if (current && current.cert === material.cert && current.key === material.key && current.ca === material.caBundle) {
    return false;
  }
  try {
    await mkdir(dir, { recursive: true, mode: 0o755 });
    const version = versionName(now);
    const versionDir = join(dir, version);
    await mkdir(versionDir, { mode: 0o755 });
    await writeSynced(join(versionDir, FILES.cert), material.cert, 0o644, true);
    await writeSynced(join(versionDir, FILES.key), material.key, 0o600, true);
    await writeSynced(join(versionDir, FILES.ca), material.caBundle, 0o644, true);
    await syncDir(versionDir);

    let previous: string | undefined;
    try {
      previous = await readlink(join(dir, DATA_LINK));
    } catch {
      previous = undefined;
    }
    const tmpLink = join(dir, `..data_tmp-${randomBytes(4).toString('hex')}`);
    await symlink(version, tmpLink);
    await rename(tmpLink, join(dir, DATA_LINK));
    for (const name of Object.values(FILES)) {
      const target = join(DATA_LINK, name);
      const linkPath = join(dir, name);
      let ok = false;
      try {
        ok = (await readlink(linkPath)) === target;
      } catch {
        ok = false;
      }
      if (!ok) {
        const tmp = `${linkPath}.tmp-${randomBytes(4).toString('hex')}`;
        await symlink(target, tmp);
        await rename(tmp, linkPath);
      }
    }
    await syncDir(dir);
    // Old versions go only after the swap; one that is still open by a reader stays readable
    // until closed (unlink semantics).
    for (const entry of await readdir(dir)) {
      if (entry.startsWith('..') && entry !== DATA_LINK && entry !== version && !entry.startsWith('..data')) {
        if (entry === previous || /^\.\.\d{4}_/.test(entry)) await rm(join(dir, entry), { recursive: true, force: true });
      }
    }
  } catch (err) {
    throw ioError(`cannot write the serving certificate into ${dir}`, err);
  }
  return true;
}
