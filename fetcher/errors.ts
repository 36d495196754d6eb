// The fetcher's failures as data: a stable code, the reference it concerns, the AWS error code
// and a hint. They are rendered into the termination message and stderr, one paragraph each.
// Nothing here ever holds a secret value: messages are built from references, key names and
// AWS error codes only, and `redact` is applied to the final text as a second line of defence.

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
  /** `key` names a key the secret's JSON does not have. */
  | 'FETCH_KEY_MISSING'
  /** `key`, `explode` or `format: env` was asked of a secret that is not a JSON object. */
  | 'FETCH_NOT_JSON'
  /** A JSON key cannot become a file name (explode) or a shell variable (format env). */
  | 'FETCH_BAD_KEY'
  /** The secret cannot be written in the asked format (e.g. binary as env, NUL byte in env). */
  | 'FETCH_FORMAT'
  /** Two items would write the same file. */
  | 'FETCH_FILE_CONFLICT'
  /** Writing the files failed (permissions, full volume, a symlink in the way…). */
  | 'FETCH_WRITE';

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

export function formatFailure(f: Failure, ctx: ReportContext = {}): string {
  const parts = [`${f.code}:`];
  if (f.ref !== undefined) parts.push(`reference ${f.ref}:`);
  parts.push(f.message.endsWith('.') ? f.message : `${f.message}.`);
  if (f.awsCode !== undefined) parts.push(`AWS error code: ${f.awsCode}.`);
  if (f.code === 'FETCH_AWS' || f.code === 'FETCH_DEADLINE') {
    if (ctx.identity !== undefined) parts.push(`Identity: ${ctx.identity}.`);
    else if (ctx.identityError !== undefined) parts.push(`Identity: unknown (${ctx.identityError}).`);
  }
  if (f.hint !== undefined) parts.push(`Hint: ${f.hint.endsWith('.') ? f.hint : `${f.hint}.`}`);
  return parts.join(' ');
}

/** One paragraph per failure, every failure (the termination message is cut to fit separately). */
export function formatReport(failures: Failure[], ctx: ReportContext = {}): string {
  const head = failures.length === 1 ? 'fetch failed:' : `fetch failed (${failures.length} problems):`;
  return [head, ...failures.map((f) => formatFailure(f, ctx))].join('\n\n') + '\n';
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

/**
 * Replaces every occurrence of a known secret value (or any line of a multi-line one) in `text`.
 * Values shorter than 4 characters are left alone: they would match everywhere and say nothing.
 */
export function redact(text: string, values: Iterable<string>): string {
  const needles = new Set<string>();
  for (const v of values) {
    for (const piece of [v, ...v.split('\n')]) {
      const p = piece.trim();
      if (p.length >= 4) needles.add(p);
    }
  }
  let out = text;
  for (const n of [...needles].sort((a, b) => b.length - a.length)) out = out.split(n).join('[REDACTED]');
  return out;
}
