// Entry of the standalone fetcher (dist/fetcher.cjs), the init container's program. It runs two
// ways: as a plain script (`node fetcher.cjs fetch …`), and, as the image runs it, from the V8
// startup snapshot scripts/bundle.mjs builds from it (`node --snapshot-blob fetcher.blob fetch …`).
// In the snapshot every module of the bundle is already loaded and the common fetch path already
// compiled (warm-up.ts), which is most of what starting the fetcher used to cost.
import { startupSnapshot } from 'node:v8';
import { run } from './main.js';
import { warmUp } from './warm-up.js';

function start(argv: string[]): void {
  void run(argv).then((code) => {
    process.exitCode = code;
    // The app waits on this container: a socket some library left open must not hold it up.
    setTimeout(() => process.exit(), 1_000).unref();
  });
}

if (startupSnapshot.isBuildingSnapshot()) {
  // A failed warm-up is an unhandled rejection: the build fails rather than ship a cold snapshot.
  void warmUp();
  // From a snapshot, argv is the node binary followed by the container's args.
  startupSnapshot.setDeserializeMainFunction(() => start(process.argv.slice(1)));
} else {
  start(process.argv.slice(2));
}
