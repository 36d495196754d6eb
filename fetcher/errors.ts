// The fetcher's failures as data: a stable code, the reference it concerns, the AWS error code
// and a hint. They are rendered into the termination message and stderr, one paragraph each.
// Messages are built from references, regions, key names and AWS error codes. Text the fetcher
// did not write (an AWS error message, an exception's message) is marked with `quoted` where it
// goes into a message, and only that text is redacted: the report's own structure stays whole.

export type FetchErrorCode =
  /** The spec (env SECRET_INJECTOR_SPEC) or the command line is missing or malformed. */
  | 'FETCH_SPEC_INVALID'
  /** The fetcher's network settings cannot be used (a proxy URL, the CA bundle, Node.js without proxy support). */
  | 'FETCH_NETWORK'
  /** A reference resolves to no region (no region in it, none in the spec or the environment). */
  | 'FETCH_NO_REGION'
  /** The pod has no AWS identity of its own (IRSA or EKS Pod Identity) and node credentials are not allowed. */
  | 'FETCH_NO_IDENTITY'
  /** An AWS call failed (AccessDenied, ResourceNotFound, DecryptionFailure, throttling, network…). */
  | 'FETCH_AWS'
  /** The overall deadline passed before every secret was fetched. */
  | 'FETCH_DEADLINE'
  /** AWS kept throttling a call (its per-account quota) until the fetcher's retry budget ran out. */
  | 'FETCH_THROTTLED'
  /** `key` names a key the secret's JSON does not have. */
  | 'FETCH_KEY_MISSING'
  /** `key`, `explode` or `format: env` was asked of a secret that is not a JSON object. */
  | 'FETCH_NOT_JSON'
  /** A JSON key cannot become a file name (explode) or a shell variable (format env). */
  | 'FETCH_BAD_KEY'
  /** The secret cannot be written in the asked format (e.g. binary as env, NUL byte in env). */
  | 'FETCH_FORMAT'
  /** A whole path (`prefix/*`) holds more secrets than the maximum. */
  | 'FETCH_TOO_MANY'
  /** Two items would write the same file, or a file would take a reserved name (the marker's, or one starting with `..`). */
  | 'FETCH_FILE_CONFLICT'
  /** Writing the files failed (permissions, full volume, a symlink in the way…). */
  | 'FETCH_WRITE'
  /** The answers or the files would not fit in the fetcher's memory limit (the volume's pages count against it), or an answer is larger than any AWS gives. */
  | 'FETCH_BUDGET';

export interface Failure {
  code: FetchErrorCode;
  /** The reference as written in the spec, when the failure concerns one. */
  ref?: string;
  /** The AWS error code, e.g. AccessDeniedException. */
  awsCode?: string;
  message: string;
  hint?: string;
}

export class FetchError extends Error {
  readonly failures: Failure[];
  constructor(failures: Failure[]) {
    super(failures.map((f) => f.message).join('; '));
    this.name = 'FetchError';
    this.failures = failures;
  }
}

export function failure(code: FetchErrorCode, message: string, extra: Omit<Failure, 'code' | 'message'> = {}): Failure {
  return { code, message, ...extra };
}

/** Kubernetes keeps at most 4096 bytes of a termination message. */
export const TERMINATION_MESSAGE_LIMIT = 4096;

export interface ReportContext {
  /** The identity the calls were made as (STS GetCallerIdentity ARN), when it could be obtained. */
  identity?: string;
  /** Why the identity could not be obtained, when it could not. */
  identityError?: string;
}

/** One failure's paragraph, its quoted text redacted. */
export function formatFailure(f: Failure, ctx: ReportContext = {}, redact: Redactor = NOTHING_TO_REDACT): string {
  return resolveQuoted(paragraph(f, ctx), redact);
}

function paragraph(f: Failure, ctx: ReportContext): string {
  const parts = [`${f.code}:`];
  if (f.ref !== undefined) parts.push(`reference ${f.ref}:`);
  // A message may end in quoted text (AWS's own sentence, with its period) and its closing mark.
  parts.push(f.message.replace(/\uE001$/, '').endsWith('.') ? f.message : `${f.message}.`);
  if (f.awsCode !== undefined) parts.push(`AWS error code: ${f.awsCode}.`);
  if (f.code === 'FETCH_AWS' || f.code === 'FETCH_DEADLINE' || f.code === 'FETCH_THROTTLED') {
    if (ctx.identity !== undefined) parts.push(`Identity: ${ctx.identity}.`);
    else if (ctx.identityError !== undefined) parts.push(`Identity: unknown (${ctx.identityError}).`);
  }
  if (f.hint !== undefined) parts.push(`Hint: ${f.hint.endsWith('.') ? f.hint : `${f.hint}.`}`);
  return parts.join(' ');
}

/**
 * One paragraph per failure, every failure (the termination message is cut to fit separately).
 * Every report goes through here, and `redact` says what the fetch has seen.
 */
export function formatReport(failures: Failure[], ctx: ReportContext, redact: Redactor): string {
  const head = failures.length === 1 ? 'fetch failed:' : `fetch failed (${failures.length} problems):`;
  return resolveQuoted([head, ...failures.map((f) => paragraph(f, ctx))].join('\n\n') + '\n', redact);
}

/** Cuts a report to the termination message limit on a paragraph boundary, saying how many were left out. */
export function fitTerminationMessage(report: string, limit = TERMINATION_MESSAGE_LIMIT): string {
  if (Buffer.byteLength(report) <= limit) return report;
  const paragraphs = report.trimEnd().split('\n\n');
  const kept: string[] = [];
  for (let i = 0; i < paragraphs.length; i++) {
    const tail = `\n\n… and ${paragraphs.length - i} more (see the container log).\n`;
    const next = [...kept, paragraphs[i]].join('\n\n');
    if (Buffer.byteLength(next + `\n\n… and ${paragraphs.length - i - 1} more (see the container log).\n`) > limit) {
      const text = kept.join('\n\n') + tail;
      if (Buffer.byteLength(text) <= limit) return text;
      return Buffer.from(text).subarray(0, limit - 3).toString('utf8').replace(/\uFFFD$/, '') + '…\n';
    }
    kept.push(paragraphs[i] as string);
  }
  return kept.join('\n\n') + '\n';
}

// Private-use characters around quoted text, removed when the report is formatted.
const OPEN = '\uE000';
const CLOSE = '\uE001';
const QUOTED = /\uE000([^\uE000\uE001]*)\uE001/g;

/** Marks text from outside the fetcher (AWS, the SDK, an exception) for redaction in the report. */
export function quoted(text: string): string {
  return `${OPEN}${text.replace(/[\uE000\uE001]/g, '')}${CLOSE}`;
}

/** Redacts a batch of quoted texts (all of one report at once: the values are scanned once). */
export type Redactor = (texts: readonly string[]) => string[];

/** For reports made before any value was fetched. */
export const NOTHING_TO_REDACT: Redactor = (texts) => [...texts];

export const REDACTED = '[REDACTED]';
/**
 * A value (a JSON string or number in it, one of its lines) this long or longer is redacted
 * wherever it appears; a shorter one where it stands as a word of its own (a one-letter value
 * would otherwise take every such letter with it).
 */
export const MIN_ANYWHERE = 4;
/** A word of quoted text this long or longer that is a piece of a value is redacted. */
export const MIN_WORD_PIECE = 4;
/** Any run of this many characters of a value is redacted too, across words (a value cut short, or inside other text). */
export const MIN_PIECE = 16;

const WORD = /[A-Za-z0-9]+/g;
const isWordChar = (c: string | undefined): boolean => c !== undefined && /[A-Za-z0-9]/.test(c);

/**
 * A redactor for quoted text. `values`: every fetched value and each string and number inside it
 * (JSON scalars). Redacted: a value of any length (a short one where it is a word of its own),
 * every run of MIN_PIECE characters of a value, and every word (letters and digits) of
 * MIN_WORD_PIECE or more that is a piece of a value. `known`: what the report itself says
 * (references and their names, regions and accounts, the identity): a stretch of quoted text that
 * lies within one of these is left as it is, since hiding it would only tell the reader that a
 * secret holds it.
 */
export function redactor(values: Iterable<unknown>, known: Iterable<string>): Redactor {
  return (texts) => {
    if (texts.length === 0) return [];
    const text = texts.join('\u0000');
    const hidden = new Uint8Array(text.length);
    const mark = (at: number, length: number) => hidden.fill(1, at, at + length);
    // Every MIN_PIECE-long window of the text, to look the values' windows up in one pass.
    const windows = new Map<string, number[]>();
    for (let i = 0; i + MIN_PIECE <= text.length; i++) {
      const w = text.slice(i, i + MIN_PIECE);
      const at = windows.get(w);
      if (at) at.push(i);
      else windows.set(w, [i]);
    }
    const whole = new Set<string>();
    const all: string[] = [];
    for (const raw of values) {
      const v = String(raw);
      all.push(v);
      for (const piece of [v, ...v.split('\n')]) {
        const p = piece.trim();
        if (p !== '' && p.length < MIN_PIECE) whole.add(p);
      }
      if (v.length < MIN_PIECE || windows.size === 0) continue;
      for (let i = 0; i + MIN_PIECE <= v.length; i++) {
        const at = windows.get(v.slice(i, i + MIN_PIECE));
        if (at) for (const j of at) mark(j, MIN_PIECE);
      }
    }
    for (const w of whole) {
      for (let i = text.indexOf(w); i !== -1; i = text.indexOf(w, i + 1)) {
        if (w.length >= MIN_ANYWHERE || (!isWordChar(text[i - 1]) && !isWordChar(text[i + w.length]))) mark(i, w.length);
      }
    }
    // Words that are pieces of a value: one search of all values per distinct word.
    const joined = all.join('\u0000');
    const piece = new Map<string, boolean>();
    for (const m of text.matchAll(WORD)) {
      const w = m[0];
      if (w.length < MIN_WORD_PIECE || w.length >= MIN_PIECE) continue;
      let is = piece.get(w);
      if (is === undefined) piece.set(w, (is = joined.includes(w)));
      if (is) mark(m.index, w.length);
    }

    const open = new Uint8Array(text.length);
    for (const k of known) {
      if (k === '') continue;
      for (let i = text.indexOf(k); i !== -1; i = text.indexOf(k, i + 1)) {
        // A short known word counts where it is a word of its own, never as a piece of another.
        if (k.length >= MIN_ANYWHERE || (!isWordChar(text[i - 1]) && !isWordChar(text[i + k.length]))) open.fill(1, i, i + k.length);
      }
    }
    let out = '';
    for (let i = 0; i < text.length; ) {
      if (hidden[i] === 0) {
        out += text[i++];
        continue;
      }
      let end = i;
      let reported = true;
      while (end < text.length && hidden[end] === 1) reported = open[end++] === 1 && reported;
      out += reported ? text.slice(i, end) : REDACTED;
      i = end;
    }
    return out.split('\u0000');
  };
}

/** Replaces each quoted stretch of `text` by its redacted form and drops the marks. */
export function resolveQuoted(text: string, redact: Redactor): string {
  const found = [...text.matchAll(QUOTED)].map((m) => m[1] as string);
  const redacted = redact(found);
  let i = 0;
  return text.replace(QUOTED, () => redacted[i++] ?? '').replace(/[\uE000\uE001]/g, '');
}
