// The standalone fetcher's bundle (dist/fetcher.cjs), the init container's and the refresh
// sidecar's program. The image runs it compiled into one executable (dist/fetcher), which starts
// it as a script does. On Node.js, start.cjs (fetcher/start.ts) compiles it with its V8 code cache
// and calls `start`; scripts/code-cache.mjs calls `warmUp` before it makes that cache. Run as a
// plain script (`node fetcher.cjs fetch …`), it starts at once.
import { run } from './main.js';

export { warmUp } from './warm-up.js';

export function start(argv: string[]): void {
  void run(argv).then((code) => {
    process.exitCode = code;
    // The app waits on this container: a socket some library left open must not hold it up.
    setTimeout(() => process.exit(), 1_000).unref();
  });
}

if (typeof module !== 'undefined' && require.main === module) start(process.argv.slice(2));
