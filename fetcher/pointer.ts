// Paths into a secret's JSON value: JSON Pointers (RFC 6901, `/db/password`, `~1` for "/" and
// `~0` for "~" in a key) and, in templates, dotted names (`db.password`, `hosts.0`). Shared by the
// webhook (a malformed path is refused at admission) and the fetcher. Messages name paths and
// keys, never a value.

export type PathResult = { tokens: string[] } | { error: string };

/** The reference tokens of a JSON Pointer; `/` starts every token (the empty pointer is not used here). */
export function parsePointer(pointer: string): PathResult {
  if (!pointer.startsWith('/')) return { error: `JSON Pointer ${JSON.stringify(pointer)} must start with "/"` };
  const tokens: string[] = [];
  for (const raw of pointer.slice(1).split('/')) {
    // RFC 6901 section 3: "~" only as "~0" or "~1".
    if (/~(?![01])/.test(raw)) {
      return { error: `JSON Pointer ${JSON.stringify(pointer)} has a "~" not followed by 0 or 1 (write "~0" for "~" and "~1" for "/" in a key)` };
    }
    tokens.push(raw.replace(/~1/g, '/').replace(/~0/g, '~'));
  }
  return { tokens };
}

const DOTTED = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

/** A template path: a JSON Pointer, or names joined by dots (letters, digits, `_`, `-`). */
export function parsePath(path: string): PathResult {
  if (path.startsWith('/')) return parsePointer(path);
  if (!DOTTED.test(path)) {
    return { error: `${JSON.stringify(path)} is not a path: write names joined by "." (letters, digits, "_", "-"), or a JSON Pointer such as /db/host` };
  }
  return { tokens: path.split('.') };
}

const INDEX = /^(0|[1-9][0-9]*)$/;

export type Resolved = { found: true; value: unknown } | { found: false; missing: string };

/**
 * The value at `tokens` in `root`. An array is indexed by a decimal index (RFC 6901: no leading
 * zeros, no "-"). When nothing is there, `missing` says where the walk stopped, by key names only.
 */
export function resolve(root: unknown, tokens: readonly string[]): Resolved {
  let node = root;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i] as string;
    const at = i === 0 ? 'at the top level' : `under ${formatPointer(tokens.slice(0, i))}`;
    if (Array.isArray(node)) {
      if (!INDEX.test(t) || Number(t) >= node.length) return { found: false, missing: `no index ${JSON.stringify(t)} in the array ${at} (${node.length} item(s))` };
      node = node[Number(t)];
    } else if (typeof node === 'object' && node !== null) {
      if (!Object.hasOwn(node, t)) return { found: false, missing: `no key ${JSON.stringify(t)} ${at}` };
      node = (node as Record<string, unknown>)[t];
    } else {
      return { found: false, missing: `${i === 0 ? 'the value' : formatPointer(tokens.slice(0, i))} is not an object or array` };
    }
  }
  return { found: true, value: node };
}

export function formatPointer(tokens: readonly string[]): string {
  return tokens.map((t) => `/${t.replace(/~/g, '~0').replace(/\//g, '~1')}`).join('');
}
