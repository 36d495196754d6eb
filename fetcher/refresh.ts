// The refresh sidecar's loop: after the fetcher wrote the first complete set, fetch again every
// interval (each wait shortened by up to JITTER at random, so a Deployment's replicas drift apart
// instead of polling in lock-step), rewrite only the files that changed, then the marker with
// the version ids and the time of the last complete refresh. Entries pinned to a versionId never
// change and are not polled. A failed refresh leaves every file as it was, logs one line, and is
// retried with capped exponential backoff; past the staleness bound the process exits 1, so the
// kubelet restarts it and the pod's restart count shows it. SIGTERM (the `stop` signal) ends the
// loop promptly with 0. The bound and the waits run on a monotonic clock; the wall clock gives only
// the marker's `fetchedAt`, which never goes backwards (a step back of the node's clock leaves it
// as it was). Everything with side effects is injected: clocks, randomness, sleep, log.

import { formatFailure, redactor, type Failure, type Redactor, type ReportContext } from './errors.js';
import { STALE_CREDENTIAL_CODES, type AwsApi, type FetchedValue } from './fetch.js';
import { collect, DEFAULT_TIMEOUTS, identityContext, reportedStrings, stsRegionOf, valueStrings, type Collected } from './main.js';
import { findConflicts } from './render.js';
import type { FetchSpec, RefreshSignal, SecretItem } from './spec.js';
import { readMarker, updateSecrets, type UpdateHooks } from './update.js';
import { insideVolume } from './volume.js';
import type { Marker, MarkerEntry } from './write.js';

/** Each wait is the interval shortened by up to this fraction: a file is never older than one interval. */
export const JITTER = 0.2;
/** First retry after a failed refresh; doubled per failure in a row, up to the interval. */
export const BACKOFF_BASE_MS = 5_000;
/** No complete refresh for this many intervals (and at least STALE_MIN_MS) and the sidecar exits 1. */
export const STALE_INTERVALS = 3;
export const STALE_MIN_MS = 5 * 60_000;

export function jittered(ms: number, random: number): number {
  return Math.round(ms * (1 - JITTER * random));
}

/** The wait after the `failures`-th failed refresh in a row (1, 2, …): doubling from 5 s, capped at the interval. */
export function backoff(failures: number, intervalMs: number, random: number): number {
  const exp = BACKOFF_BASE_MS * 2 ** Math.min(Math.max(failures - 1, 0), 30);
  return jittered(Math.min(exp, intervalMs), random);
}

export function staleAfterMs(intervalMs: number): number {
  return Math.max(STALE_INTERVALS * intervalMs, STALE_MIN_MS);
}

export interface RefreshDeps {
  api: AwsApi;
  envRegion?: string;
  /** The wall clock: only for `fetchedAt` in the marker, which never goes backwards. */
  now: () => number;
  /**
   * A monotonic clock (ms) for the staleness bound and the waits: a step of the wall clock neither
   * stretches nor cuts them. Defaults to `now` (tests drive one fake clock).
   */
  monotonic?: () => number;
  random: () => number;
  /** Resolves after `ms`, or as soon as `signal` aborts. */
  sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  /** One line, no value in it (already redacted). */
  log: (line: string) => void;
  /** The final word when the sidecar gives up (the termination message). */
  report?: (text: string) => void;
  /** Sends the spec's refresh signal to the app (signal.ts); returns the line to log. */
  signal?: (target: RefreshSignal) => string;
  hooks?: UpdateHooks;
}

export interface CycleResult {
  ok: boolean;
  changed: string[];
  failures: Failure[];
  /** Redacted, one line. */
  summary?: string;
  /** What the refresh signal did, when files changed and the pod asked for one. */
  signalled?: string;
}

export const oneLine = (failures: Failure[], ctx: ReportContext, redact: Redactor): string =>
  failures.map((f) => formatFailure(f, ctx, redact)).join(' | ');

export class Refresher {
  readonly intervalMs: number;
  private readonly polled: Array<{ index: number; item: SecretItem }>;
  private entries: Array<MarkerEntry | undefined>;
  /** Monotonic time of the last complete refresh (or of the fetcher's write). */
  private lastSuccess: number;
  /** Wall time written as `fetchedAt`: never earlier than the one before it. */
  private fetchedAt: number;
  /** Wall time written as `changedAt`: when a file last changed, never earlier than the one before it. */
  private changedAt: number | undefined;
  private failuresInRow = 0;
  private readonly cleaned = new Set<string>();
  /** The values of the pass in progress (or the last one), for redaction; replaced each pass. */
  private seen = new Map<string, FetchedValue>();

  constructor(
    private readonly spec: FetchSpec,
    private readonly deps: RefreshDeps,
  ) {
    if (spec.refresh === undefined) throw new Error('the spec sets no refresh interval');
    this.intervalMs = spec.refresh.intervalSeconds * 1000;
    this.polled = spec.items.map((item, index) => ({ index, item })).filter(({ item }) => item.versionId === undefined);
    this.entries = spec.items.map(() => undefined);
    this.lastSuccess = this.mono();
    this.fetchedAt = deps.now();
  }

  private mono(): number {
    return (this.deps.monotonic ?? this.deps.now)();
  }

  /** Picks up where the fetcher (or this sidecar before a restart) left off: the marker's time and entries. */
  async resume(): Promise<void> {
    const marker = await readMarker(this.spec.dir);
    if (marker === undefined) return;
    const at = marker.fetchedAt === undefined ? Number.NaN : Date.parse(marker.fetchedAt);
    if (Number.isFinite(at)) {
      // The marker's age by the wall clock, once, then counted on the monotonic clock.
      this.lastSuccess = this.mono() - Math.max(0, this.deps.now() - at);
      this.fetchedAt = at;
    }
    const changed = marker.changedAt === undefined ? Number.NaN : Date.parse(marker.changedAt);
    if (Number.isFinite(changed)) this.changedAt = changed;
    // The fetcher writes one entry per item, in order.
    if (marker.secrets.length === this.spec.items.length && marker.secrets.every((e, i) => e?.ref === this.spec.items[i]!.ref)) {
      this.entries = [...marker.secrets];
    }
  }

  /** Wall time of the last complete refresh, as the marker's `fetchedAt` says it. */
  get lastSuccessAt(): number {
    return this.fetchedAt;
  }

  /** Hides what the last pass fetched from a report, leaving what the report itself names. */
  redactor(ctx: ReportContext = {}): Redactor {
    return redactor(valueStrings(this.seen.values()), reportedStrings(this.spec, this.deps.envRegion, ctx));
  }

  /** One refresh: fetch what is polled, rewrite what changed, then the marker. */
  async cycle(stop: AbortSignal): Promise<CycleResult> {
    const timeouts = { ...DEFAULT_TIMEOUTS, ...this.spec.timeouts };
    const pollSpec: FetchSpec = { ...this.spec, items: this.polled.map((p) => p.item) };
    this.seen = new Map();
    // Cleared as soon as the calls are done: a deadline timer left pending would keep this
    // refresh's signals, and what listens to them, alive for the deadline's whole length.
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), timeouts.deadlineSeconds * 1000);
    let c: Collected;
    try {
      c = await collect(pollSpec, this.deps.api, this.deps.envRegion, AbortSignal.any([stop, deadline.signal]), this.seen, 'refresh');
    } finally {
      clearTimeout(timer);
    }
    if (stop.aborted) return { ok: false, changed: [], failures: [] };
    const failures = [...c.failures];
    let files = c.files;
    const conflicts = findConflicts(files);
    if (conflicts.length > 0) {
      failures.push(...conflicts);
      files = [];
    }
    const fresh = new Map<number, MarkerEntry>();
    if (conflicts.length === 0) for (const [i, entry] of c.entries) fresh.set(this.polled[i]!.index, entry);

    // Files of a key gone from a secret that rendered (explode): not left beside a fresh marker.
    const keep = new Set([...files.map((f) => f.path), ...this.entries.filter((e, i) => e !== undefined && !fresh.has(i)).flatMap((e) => e!.files)]);
    const remove = [...fresh].flatMap(([i]) => (this.entries[i]?.files ?? []).filter((p) => !keep.has(p) && insideVolume(p)));

    let completeAt: number | undefined;
    // What the marker said before: kept when this pass's marker does not reach the volume.
    const before = { entries: [...this.entries], fetchedAt: this.fetchedAt, changedAt: this.changedAt };
    const update = await updateSecrets(
      this.spec.dir,
      files,
      (changed, writeFailures) => {
        // An item whose files could not all be written keeps its old entry: the marker says what is on the volume.
        const failedPaths = new Set(writeFailures.map((w) => w.path));
        for (const [i, entry] of fresh) if (!entry.files.some((f) => failedPaths.has(f))) this.entries[i] = entry;
        const complete = failures.length === 0 && writeFailures.length === 0;
        if (!complete && changed.length === 0) return undefined;
        if (complete) {
          completeAt = this.mono();
          this.fetchedAt = Math.max(this.fetchedAt, this.deps.now());
        }
        if (changed.length > 0) this.changedAt = Math.max(this.changedAt ?? 0, this.deps.now());
        const marker: Marker = { version: 1, fetchedAt: new Date(this.fetchedAt).toISOString(), secrets: this.entries.filter((e): e is MarkerEntry => e !== undefined) };
        if (this.changedAt !== undefined) marker.changedAt = new Date(this.changedAt).toISOString();
        return marker;
      },
      { remove, cleaned: this.cleaned, ...(this.deps.hooks !== undefined && { hooks: this.deps.hooks }) },
    );
    failures.push(...update.failures);
    // The volume kept its last version (a version that could not be published): so do the entries,
    // or a key removed in this pass would be taken for one the app wrote, and kept.
    if (!update.markerWritten) ({ entries: this.entries, fetchedAt: this.fetchedAt, changedAt: this.changedAt } = before);
    if (failures.length === 0 && completeAt !== undefined) this.lastSuccess = completeAt;
    // AWS held the credentials as expired (a node clock behind AWS's keeps them past their stated
    // expiry): the next call, the identity lookup below included, resolves them again.
    if (failures.some((f) => f.awsCode !== undefined && STALE_CREDENTIAL_CODES.has(f.awsCode))) this.deps.api.forgetCredentials?.();
    // After the files and the marker, and only when a file changed: the app re-reads what is new.
    const target = this.spec.refresh?.signal;
    const signalled = update.changed.length > 0 && target !== undefined && this.deps.signal !== undefined ? this.deps.signal(target) : undefined;
    const result: CycleResult = { ok: failures.length === 0, changed: update.changed, failures, ...(signalled !== undefined && { signalled }) };
    if (result.ok) return result;
    const ctx = c.awsFailed ? await identityContext(this.deps.api, stsRegionOf(this.spec, this.deps.envRegion), 3_000) : {};
    return { ...result, summary: oneLine(failures, ctx, this.redactor(ctx)) };
  }

  /** The loop: returns the exit code (0 once `stop` aborts, 1 when stale). */
  async run(stop: AbortSignal): Promise<number> {
    const { random, sleep, log } = this.deps;
    const now = () => this.mono();
    const staleMs = staleAfterMs(this.intervalMs);
    let delay = Math.max(0, this.lastSuccess + jittered(this.intervalMs, random()) - now());
    log(`refresh: ${this.polled.length} of ${this.spec.items.length} entries polled every ${this.intervalMs / 1000} s; next in ${Math.round(delay / 1000)} s`);
    for (;;) {
      await sleep(delay, stop);
      if (stop.aborted) return 0;
      const r = await this.cycle(stop);
      if (stop.aborted) return 0;
      if (r.changed.length > 0) log(`refresh: rewrote ${r.changed.length} file(s): ${r.changed.join(', ')}`);
      if (r.signalled !== undefined) log(r.signalled);
      if (r.ok) {
        if (this.failuresInRow > 0) log(`refresh: recovered after ${this.failuresInRow} failed attempt(s)`);
        this.failuresInRow = 0;
        delay = jittered(this.intervalMs, random());
        continue;
      }
      this.failuresInRow++;
      const age = now() - this.lastSuccess;
      const since = `files last fetched completely ${new Date(this.fetchedAt).toISOString()}, ${Math.round(age / 1000)} s ago`;
      if (age > staleMs) {
        const text = `refresh stale: no complete refresh for ${Math.round(age / 1000)} s, over the bound of ${staleMs / 1000} s (${since}); exiting 1 so that the kubelet restarts this sidecar. Last failure: ${r.summary}`;
        log(text);
        this.deps.report?.(`${text}\n`);
        return 1;
      }
      delay = backoff(this.failuresInRow, this.intervalMs, random());
      log(`refresh failed (${this.failuresInRow} in a row; ${since}); next attempt in ${Math.round(delay / 1000)} s: ${r.summary}`);
    }
  }
}

/** setTimeout that ends early, without rejecting, when `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
