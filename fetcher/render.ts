// Values -> file contents: key extraction, explode and the three formats. Pure; every error names
// the reference and the key the spec asked for, never a value (nor a JSON parser's message, which
// quotes it) nor a key name the secret holds: a key of the secret is named by its position.

import { failure, type Failure } from './errors.js';
import type { FetchedValue } from './fetch.js';
import { formatPointer, parsePointer, resolve } from './pointer.js';
import { isReservedPath, isSafeRelativePath, MARKER_FILE, RESERVED_PREFIX, type Format, type SecretItem } from './spec.js';
import { parseTemplate, renderTemplate, valueText } from './template.js';

export interface OutputFile {
  /** Relative to the mount. */
  path: string;
  data: Buffer;
  mode: number;
  /** The reference it came from (for conflicts and the marker). */
  ref: string;
}

export type RenderResult = { files: OutputFile[] } | { failures: Failure[] };

const SHELL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const FILE_SEGMENT = /^[A-Za-z0-9._-]+$/;
/**
 * Names a shell or the dynamic loader acts on, which a sourced env file must not set: sourcing
 * would hand the secret's author the app's next command (BASH_ENV, ENV, PROMPT_COMMAND and PS4 run
 * their value; PATH, CDPATH, IFS and GLOBIGNORE steer what runs; LD_PRELOAD loads code into every
 * process) or stop the app's start script (UID, EUID, PPID, SHELLOPTS, BASHOPTS are read-only).
 * From the manuals: bash(1) "Shell Variables" (every variable it sets or reads, listed whole),
 * dash(1) "Environment" and its ENV, and ld.so(8) (every LD_ variable). BASH_ and LD_ are
 * refused as prefixes, so exported functions (BASH_FUNC_*) and later additions are covered.
 */
const SHELL_OWNED = new Set([
  // bash(1), Shell Variables: set by the shell
  '_', 'BASH', 'BASHOPTS', 'BASHPID', 'BASH_ALIASES', 'BASH_ARGC', 'BASH_ARGV', 'BASH_ARGV0', 'BASH_CMDS', 'BASH_COMMAND',
  'BASH_EXECUTION_STRING', 'BASH_LINENO', 'BASH_LOADABLES_PATH', 'BASH_REMATCH', 'BASH_SOURCE', 'BASH_SUBSHELL',
  'BASH_VERSINFO', 'BASH_VERSION', 'COMP_CWORD', 'COMP_KEY', 'COMP_LINE', 'COMP_POINT', 'COMP_TYPE', 'COMP_WORDBREAKS',
  'COMP_WORDS', 'COPROC', 'DIRSTACK', 'EPOCHREALTIME', 'EPOCHSECONDS', 'EUID', 'FUNCNAME', 'GROUPS', 'HISTCMD', 'HOSTNAME',
  'HOSTTYPE', 'LINENO', 'MACHTYPE', 'MAPFILE', 'OLDPWD', 'OPTARG', 'OPTIND', 'OSTYPE', 'PIPESTATUS', 'PPID', 'PWD', 'RANDOM',
  'READLINE_ARGUMENT', 'READLINE_LINE', 'READLINE_MARK', 'READLINE_POINT', 'REPLY', 'SECONDS', 'SHELLOPTS', 'SHLVL',
  'SRANDOM', 'UID',
  // bash(1), Shell Variables: used by the shell
  'BASH_COMPAT', 'BASH_ENV', 'BASH_XTRACEFD', 'CDPATH', 'CHILD_MAX', 'COLUMNS', 'COMPREPLY', 'EMACS', 'ENV', 'EXECIGNORE',
  'FCEDIT', 'FIGNORE', 'FUNCNEST', 'GLOBIGNORE', 'HISTCONTROL', 'HISTFILE', 'HISTFILESIZE', 'HISTIGNORE', 'HISTSIZE',
  'HISTTIMEFORMAT', 'HOME', 'HOSTFILE', 'IFS', 'IGNOREEOF', 'INPUTRC', 'INSIDE_EMACS', 'LANG', 'LC_ALL', 'LC_COLLATE',
  'LC_CTYPE', 'LC_MESSAGES', 'LC_NUMERIC', 'LC_TIME', 'LINES', 'MAIL', 'MAILCHECK', 'MAILPATH', 'OPTERR', 'PATH',
  'POSIXLY_CORRECT', 'PROMPT_COMMAND', 'PROMPT_DIRTRIM', 'PS0', 'PS1', 'PS2', 'PS3', 'PS4', 'SHELL', 'TIMEFORMAT', 'TMOUT',
  'TMPDIR', 'auto_resume', 'histchars',
  // dash(1), Environment (the rest are above)
  'TERM',
]);
const SHELL_OWNED_PREFIXES = ['BASH_', 'LD_'];

/** Why a shell variable name must not be set by a sourced file, if it must not. */
export function shellOwned(name: string): string | undefined {
  if (SHELL_OWNED.has(name)) return 'a variable the shell itself sets or acts on';
  const prefix = SHELL_OWNED_PREFIXES.find((p) => name.startsWith(p));
  if (prefix === 'LD_') return "a variable of the dynamic loader (ld.so), which acts on it in every program the app starts";
  if (prefix !== undefined) return `a ${prefix}* variable, which bash reserves`;
  return undefined;
}

/** The longest file name Linux file systems take (bytes; file names here are ASCII). */
const NAME_MAX = 255;

type JsonObject = Record<string, unknown>;

/** A key of the secret, named by its position only (its name may be sensitive). */
const nth = (i: number, of: number): string => `key ${i + 1} of ${of} in the secret's JSON object`;

function parseJson(text: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false };
  }
}

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

const scalarText = valueText;

/** Single-quoted for POSIX sh: nothing inside single quotes is special except the quote itself. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * `NAME='value'` lines: `set -a; . file` never runs a value, whatever it holds (quotes, `$`,
 * backticks, newlines). Keys that are not shell names are refused rather than mangled, and so are
 * names the shell or the dynamic loader act on, which would turn data into code or control.
 */
export function renderEnv(obj: JsonObject, ref: string): { text: string } | { failures: Failure[] } {
  const failures: Failure[] = [];
  const lines: string[] = [];
  const entries = Object.entries(obj);
  for (const [i, [k, v]] of entries.entries()) {
    const which = nth(i, entries.length);
    if (!SHELL_NAME.test(k)) {
      failures.push(
        failure('FETCH_BAD_KEY', `${which} is not a valid shell variable name (letters, digits, _; not starting with a digit)`, {
          ref,
          hint: 'use format raw or json, or rename the key',
        }),
      );
      continue;
    }
    const owned = shellOwned(k);
    if (owned !== undefined) {
      failures.push(
        failure('FETCH_BAD_KEY', `${which} is ${owned}: setting it by sourcing the file would change what the app runs`, {
          ref,
          hint: 'rename the key (an app prefix such as APP_ works), or use format raw or json',
        }),
      );
      continue;
    }
    const text = v === null ? '' : scalarText(v);
    if (text.includes('\u0000')) {
      failures.push(failure('FETCH_FORMAT', `the value of ${which} holds a NUL byte, which no shell variable can hold`, { ref }));
      continue;
    }
    lines.push(`${k}=${shellQuote(text)}`);
  }
  return failures.length > 0 ? { failures } : { text: lines.length > 0 ? `${lines.join('\n')}\n` : '' };
}

function notJson(ref: string, why: string): Failure {
  return failure('FETCH_NOT_JSON', why, { ref, hint: 'store the secret as a JSON object, or drop key/explode and use format raw' });
}

function selectKey(obj: JsonObject | unknown[], key: string, ref: string): { value: unknown } | { failure: Failure } {
  if (key.startsWith('/')) {
    const p = parsePointer(key);
    if ('error' in p) return { failure: failure('FETCH_SPEC_INVALID', `key: ${p.error}`, { ref }) };
    const r = resolve(obj, p.tokens);
    if (!r.found) return { failure: failure('FETCH_KEY_MISSING', `JSON Pointer ${formatPointer(p.tokens)} finds nothing in the secret's JSON: ${r.missing}`, { ref }) };
    return { value: r.value };
  }
  if (Array.isArray(obj) || !Object.hasOwn(obj, key)) {
    const count = Object.keys(obj).length;
    // Its keys are not listed: a key name may itself be sensitive (a hostname, a user name).
    const known = count === 0 ? 'it has no keys' : `it has ${count} other key${count === 1 ? '' : 's'}, not listed here`;
    return { failure: failure('FETCH_KEY_MISSING', `key ${JSON.stringify(key)} is not in the secret's JSON (${known})`, { ref }) };
  }
  return { value: obj[key] };
}

function encode(value: unknown, format: Format, ref: string, what: string): { data: Buffer } | { failure: Failure } {
  if (format === 'json') return { data: Buffer.from(JSON.stringify(value)) };
  if (format === 'env') {
    if (!isObject(value)) return { failure: notJson(ref, `format env needs a JSON object, and ${what} is not one`) };
    const env = renderEnv(value, ref);
    if ('failures' in env) return { failure: env.failures[0] as Failure };
    return { data: Buffer.from(env.text) };
  }
  return { data: Buffer.from(scalarText(value)) };
}

export function renderItem(item: SecretItem, value: FetchedValue, defaultMode: number): RenderResult {
  if (value.members !== undefined) return renderMembers(item, value.members, defaultMode);
  const ref = item.ref;
  const mode = item.mode ?? defaultMode;
  const format: Format = item.format ?? 'raw';
  const needsJson = item.key !== undefined || item.explode === true || format !== 'raw' || item.template !== undefined;

  if (value.text === undefined) {
    const bytes = value.binary ?? new Uint8Array();
    if (needsJson) {
      return {
        failures: [
          failure('FETCH_FORMAT', 'the secret is binary (SecretBinary); key, explode, template and formats json and env need a JSON SecretString', { ref }),
        ],
      };
    }
    return { files: [{ path: item.file as string, data: Buffer.from(bytes), mode, ref }] };
  }

  const text = value.text;
  if (!needsJson) return { files: [{ path: item.file as string, data: Buffer.from(text), mode, ref }] };

  const parsed = parseJson(text);
  if (!parsed.ok) {
    const what =
      item.key !== undefined
        ? `key ${JSON.stringify(item.key)} was asked of it`
        : item.explode
          ? 'explode was asked of it'
          : item.template !== undefined
            ? 'a template was asked of it'
            : `format ${format} was asked of it`;
    return { failures: [notJson(ref, `the secret is not JSON, but ${what}`)] };
  }

  if (item.template !== undefined) {
    const t = parseTemplate(item.template);
    if ('error' in t) return { failures: [failure('FETCH_SPEC_INVALID', `template ${t.error}`, { ref })] };
    const r = renderTemplate(t.parts, parsed.value);
    if ('missing' in r) {
      return {
        failures: r.missing.map((m) =>
          failure('FETCH_KEY_MISSING', `template placeholder ${JSON.stringify(m.placeholder)} finds nothing in the secret's JSON: ${m.why}`, { ref }),
        ),
      };
    }
    return { files: [{ path: item.file as string, data: Buffer.from(r.text), mode, ref }] };
  }

  if (item.explode) {
    if (!isObject(parsed.value)) return { failures: [notJson(ref, 'explode needs a JSON object, and the secret is not one')] };
    if (format === 'env') return { failures: [failure('FETCH_FORMAT', 'explode writes one file per key; format env does not apply', { ref })] };
    const failures: Failure[] = [];
    const files: OutputFile[] = [];
    const entries = Object.entries(parsed.value);
    for (const [i, [k, v]] of entries.entries()) {
      const name = `${item.prefix ?? ''}${k}`;
      if (!FILE_SEGMENT.test(name) || name === '.' || name === '..') {
        failures.push(
          failure('FETCH_BAD_KEY', `${nth(i, entries.length)} cannot be a file name (letters, digits, ".", "_" and "-" only)`, { ref }),
        );
        continue;
      }
      if (name.length > NAME_MAX) {
        failures.push(failure('FETCH_BAD_KEY', `${nth(i, entries.length)} makes a file name longer than ${NAME_MAX} characters`, { ref }));
        continue;
      }
      const path = item.file !== undefined ? `${item.file}/${name}` : name;
      files.push({ path, data: Buffer.from(format === 'json' ? JSON.stringify(v) : scalarText(v)), mode, ref });
    }
    return failures.length > 0 ? { failures } : { files };
  }

  let selected: unknown = parsed.value;
  let what = 'the secret';
  if (item.key !== undefined) {
    if (!isObject(parsed.value) && !(item.key.startsWith('/') && Array.isArray(parsed.value))) return { failures: [notJson(ref, `key ${JSON.stringify(item.key)} was asked of a secret that is not a JSON object`)] };
    const s = selectKey(parsed.value, item.key, ref);
    if ('failure' in s) return { failures: [s.failure] };
    selected = s.value;
    what = `the value of key ${JSON.stringify(item.key)}`;
  } else if (format === 'json') {
    // The whole secret as JSON: it parsed, so it is written exactly as stored.
    return { files: [{ path: item.file as string, data: Buffer.from(text), mode, ref }] };
  }
  const encoded = encode(selected, format, ref, what);
  if ('failure' in encoded) return { failures: [encoded.failure] };
  return { files: [{ path: item.file as string, data: encoded.data, mode, ref }] };
}

/**
 * A whole path's secrets, each rendered as the item would render one secret, into `file` (a
 * directory) under the rest of its name. A name that cannot be a path inside the mount fails
 * the item, naming the secret (a name, never a value).
 */
function renderMembers(item: SecretItem, members: NonNullable<FetchedValue['members']>, defaultMode: number): RenderResult {
  const failures: Failure[] = [];
  const files: OutputFile[] = [];
  for (const m of members) {
    if (!isSafeRelativePath(m.name) || m.name.split('/').includes(MARKER_FILE) || isReservedPath(m.name)) {
      failures.push(
        failure('FETCH_BAD_KEY', `the secret ${JSON.stringify(m.name)} under this path cannot be a file name (segments of letters, digits, ".", "_" and "-")`, {
          ref: item.ref,
          hint: 'rename the secret, or reference it on its own with a file name',
        }),
      );
      continue;
    }
    const path = item.file !== undefined ? `${item.file}/${m.name}` : m.name;
    const r = renderItem({ ...item, ref: `${item.ref} (${m.name})`, file: path }, m.value, defaultMode);
    if ('failures' in r) failures.push(...r.failures);
    else files.push(...r.files.map((f) => ({ ...f, ref: item.ref })));
  }
  return failures.length > 0 ? { failures } : { files };
}

/** Two items writing one path, a file where another needs a directory, or the marker's name. */
export function findConflicts(files: OutputFile[]): Failure[] {
  const failures: Failure[] = [];
  const byPath = new Map<string, OutputFile>();
  for (const f of files) {
    if (isReservedPath(f.path)) {
      const what = f.path === MARKER_FILE ? 'the marker written after every secret' : `the volume's own names (starting with "${RESERVED_PREFIX}": its versions)`;
      failures.push(failure('FETCH_FILE_CONFLICT', `file ${f.path} is reserved for ${what}`, { ref: f.ref }));
      continue;
    }
    const other = byPath.get(f.path);
    if (other) failures.push(failure('FETCH_FILE_CONFLICT', `file ${f.path} is also written by ${other.ref}`, { ref: f.ref }));
    else byPath.set(f.path, f);
  }
  for (const f of byPath.values()) {
    const segments = f.path.split('/');
    for (let i = 1; i < segments.length; i++) {
      const parent = segments.slice(0, i).join('/');
      const other = byPath.get(parent);
      if (other) failures.push(failure('FETCH_FILE_CONFLICT', `${parent} is a file (from ${other.ref}) but ${f.path} needs it as a directory`, { ref: f.ref }));
    }
  }
  return failures;
}
