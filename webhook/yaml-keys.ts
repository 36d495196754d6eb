// Repeated mapping keys, found in one pass. The YAML parser's own check (uniqueKeys) compares each
// key with every earlier key of its mapping: seconds for the tens of thousands of keys a 256 KiB
// annotation or a large ConfigMap holds. Parse with `uniqueKeys: false` and call this instead.

import { isScalar, visit, type Document } from 'yaml';

/** A key that appears twice in one mapping (compared as the parser compares: by scalar value). */
export function repeatedKey(doc: Document): { key: unknown } | undefined {
  let found: { key: unknown } | undefined;
  visit(doc, {
    Map: (_, map) => {
      const seen = new Set<unknown>();
      for (const pair of map.items) {
        const key = isScalar(pair.key) ? pair.key.value : pair.key;
        if (seen.size === seen.add(key).size) {
          found = { key };
          return visit.BREAK;
        }
      }
      return undefined;
    },
  });
  return found;
}
