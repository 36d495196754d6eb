// Entry of the standalone fetcher bundle (dist/fetcher.mjs), the init container's program.
import { run } from './main.js';

process.exitCode = await run(process.argv.slice(2));
// The app waits on this container: a socket some library left open must not hold it up.
setTimeout(() => process.exit(), 1_000).unref();
