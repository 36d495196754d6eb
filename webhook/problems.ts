// Errors are data: every reason the webhook refuses a pod is a Problem with a stable code, the
// annotation (or pod field) it is about, and a message for people. Parsers collect all of them
// and the review joins them into one denial, so a user fixes everything in one round.

export type ProblemCode =
  | 'WEBHOOK_INVALID_ANNOTATION' // an annotation's value does not parse or validate
  | 'WEBHOOK_CONFLICTING_ANNOTATIONS' // values that are fine alone but not together
  | 'WEBHOOK_NO_SECRETS' // injection asked for, but no secret named
  | 'WEBHOOK_UNKNOWN_CONTAINER' // `containers` names a container the pod does not have
  | 'WEBHOOK_MOUNT_CLASH' // the mount path is already taken in a target container
  | 'WEBHOOK_UNSUPPORTED_POD' // a pod we cannot inject into without breaking it
  | 'WEBHOOK_INVALID_POD' // the review's object is not a usable pod
  | 'WEBHOOK_INSECURE_ENDPOINT' // an AWS endpoint override of the webhook's settings is not https://
  | 'WEBHOOK_INTERNAL'; // a bug of ours: the pod is refused rather than given a bad patch

export type Stage = 'should-inject' | 'defaults' | 'parse' | 'validate' | 'render';

export interface Problem {
  code: ProblemCode;
  /** The full annotation key, or a pod field path such as `spec.containers`. */
  subject: string;
  message: string;
}

export function problem(code: ProblemCode, subject: string, message: string): Problem {
  return { code, subject, message };
}

/** User text echoed in messages is cut short: a denial must stay readable whatever was sent. */
export function quote(value: unknown, max = 80): string {
  const text = typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value));
  const cut = text.length > max ? `${text.slice(0, max)}…` : text;
  return JSON.stringify(cut);
}

/** A denial lists this many problems at most; a pod can carry thousands (one per list entry). */
export const MAX_LISTED_PROBLEMS = 30;

/** The first `max` of a list, then how many more there are. */
export function firstOf(items: readonly string[], max = MAX_LISTED_PROBLEMS): string[] {
  return items.length > max ? [...items.slice(0, max), `… and ${items.length - max} more`] : [...items];
}

/** The problems one stage found. */
export interface StageProblems {
  stage: Stage;
  problems: readonly Problem[];
}

/**
 * One denial for every problem of every stage that ran: the stages are named in the head, the
 * problems follow stage by stage.
 */
export function formatProblems(groups: readonly StageProblems[]): string {
  const all = groups.flatMap((g) => g.problems);
  const lines = firstOf(all.map((p) => `${p.subject}: ${p.message}`));
  const head = all.length === 1 ? '' : `${all.length} problems: `;
  return `aws-secret-injector (${groups.map((g) => g.stage).join(', ')}): ${head}${lines.join('; ')}`;
}
