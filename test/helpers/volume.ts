// The secrets volume as the app sees it: every path under the mount, links followed (each
// top-level name is a link through `..data` into the current version), the writers' own `..`
// names left out. Directories end in `/`.

import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export function appView(root: string, prefix = ''): string[] {
  return readdirSync(join(root, prefix))
    .filter((name) => prefix !== '' || !name.startsWith('..'))
    .flatMap((name) => {
      const path = `${prefix}${name}`;
      let dir = false;
      try {
        dir = statSync(join(root, path)).isDirectory();
      } catch {
        return [`${path} (dangling)`];
      }
      return dir ? [`${path}/`, ...appView(root, `${path}/`)] : [path];
    })
    .sort();
}
