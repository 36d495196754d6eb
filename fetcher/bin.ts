// Entry of the standalone fetcher bundle (dist/fetcher.mjs), the init container's program.
import { run } from './main.js';

process.exitCode = await run(process.argv.slice(2));
