// Bun, the compiler and runtime of the fetcher's executable: the dev dependency `bun`, whose
// optional dependency for the machine's platform (@oven/bun-linux-<arch>, at the version
// package-lock.json pins) holds the executable. Its install script, which only links that
// executable into bun's own bin, is not needed and not run.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** Bun's name of each CPU architecture, by Node.js's (process.arch) or a container build's (TARGETARCH). */
export const BUN_ARCH = { x64: 'x64', amd64: 'x64', arm64: 'aarch64' };

/** The installed Bun package of the machine's platform, or undefined where it has none. */
export function hostBunDir() {
  if (process.platform !== 'linux' || BUN_ARCH[process.arch] === undefined) return undefined;
  try {
    const bun = createRequire(import.meta.url).resolve('bun/package.json');
    return dirname(createRequire(bun).resolve(`@oven/bun-linux-${BUN_ARCH[process.arch]}/package.json`));
  } catch {
    return undefined;
  }
}

/** The bun executable of the machine's platform. */
export function bunPath() {
  const dir = hostBunDir();
  if (dir === undefined) throw new Error(`no Bun for ${process.platform}-${process.arch}: the fetcher compiles on Linux x64 or arm64 (npm ci installs it there)`);
  return join(dir, 'bin', 'bun');
}
