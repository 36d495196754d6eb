// Worker threads for the large reviews (review-worker.ts says why). Started on first use, so a
// webhook that never sees one pays nothing; a fixed number, each reviewing one at a time, with a
// bounded queue, so a burst of large reviews costs a bounded amount of memory and CPU while the
// event loop keeps answering every other review.

import { Worker } from 'node:worker_threads';
import type { MutationConfig } from './types.js';
// Types only: review-worker.ts stays a chunk of its own in the bundle, loaded by main.ts with a
// dynamic import, so a worker loads the review code and nothing of the HTTP server.
import type { ReviewRoute, WorkerAnswer, WorkerTask } from './review-worker.js';

/** What the HTTP shell hands a large review to. */
export interface ReviewOffload {
  /**
   * `route`: the handler the review is for (the pods' unless given). `abandoned`: aborted when the
   * client has gone; a review still waiting for a worker then leaves the queue unreviewed.
   */
  run(raw: string, config: MutationConfig, route?: ReviewRoute, abandoned?: AbortSignal): Promise<WorkerAnswer>;
  close(): Promise<void>;
}

export interface PoolOptions {
  /**
   * Worker threads. One: the event loop keeps a core of a two-core node to itself, and the
   * largest reviews a pod can send, eight at once, are all answered within the apiserver's
   * timeout one after another. A second worker finishes none of them sooner on a shared core, and
   * its heap and the garbage collection of both, which V8 runs on helper threads beside the event
   * loop at its priority, took the webhook near the chart's memory limit and held other reviews up
   * to a second (docs/performance.md).
   */
  size: number;
  /** Reviews waiting for a worker beyond this are refused at once (the apiserver retries none, but a queue this long would outlast its timeout anyway). */
  maxQueued: number;
  /**
   * A worker's heap: a review that needs more ends that worker (and fails with 500) instead of
   * the whole process; the largest legitimate review needs well under it.
   */
  maxOldGenerationSizeMb: number;
  /**
   * A worker's young generation. Left to V8 next to a set old generation, it grew until the
   * largest review took half as much CPU again, most of it garbage collection on those helper
   * threads, and the worker about twice the memory.
   */
  maxYoungGenerationSizeMb: number;
}

export const POOL_OPTIONS: Readonly<PoolOptions> = { size: 1, maxQueued: 64, maxOldGenerationSizeMb: 64, maxYoungGenerationSizeMb: 16 };

export class PoolBusyError extends Error {
  override name = 'PoolBusyError';
}

/** The client went away while its review waited for a worker: nobody to answer, nothing reviewed. */
export class AbandonedError extends Error {
  override name = 'AbandonedError';
}

interface Pending {
  task: WorkerTask;
  resolve: (a: WorkerAnswer) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  current?: Pending;
}

export class ReviewPool implements ReviewOffload {
  readonly #url: URL;
  readonly #mark: string;
  readonly #opts: PoolOptions;
  readonly #slots: Slot[] = [];
  readonly #queue: Pending[] = [];
  #next = 0;
  #closed = false;

  /** `worker`: review-worker.ts's REVIEW_WORKER_URL and REVIEW_WORKER_MARK. */
  constructor(worker: { url: string; mark: string }, opts: Partial<PoolOptions> = {}) {
    this.#url = new URL(worker.url);
    this.#mark = worker.mark;
    this.#opts = { ...POOL_OPTIONS, ...opts };
  }

  run(raw: string, config: MutationConfig, route?: ReviewRoute, abandoned?: AbortSignal): Promise<WorkerAnswer> {
    if (this.#closed) return Promise.reject(new PoolBusyError('the review workers are stopped'));
    if (abandoned?.aborted) return Promise.reject(new AbandonedError('the client went away'));
    if (this.#queue.length >= this.#opts.maxQueued) return Promise.reject(new PoolBusyError(`${this.#queue.length} large reviews already wait for a worker`));
    return new Promise((resolve, reject) => {
      const p: Pending = { task: { id: this.#next++, raw, config, ...(route !== undefined && { route }) }, resolve, reject };
      // The apiserver gives up after its timeout; a review nobody waits for must not delay the
      // ones behind it (one worker takes them in turn). Once a worker has it, it runs to the end.
      abandoned?.addEventListener(
        'abort',
        () => {
          const i = this.#queue.indexOf(p);
          if (i < 0) return;
          this.#queue.splice(i, 1);
          reject(new AbandonedError('the client went away while its review waited for a worker'));
        },
        { once: true },
      );
      this.#queue.push(p);
      this.#dispatch();
    });
  }

  #dispatch(): void {
    while (this.#queue.length > 0) {
      let slot = this.#slots.find((s) => s.current === undefined);
      if (slot === undefined && this.#slots.length < this.#opts.size) slot = this.#spawn();
      if (slot === undefined) return;
      const p = this.#queue.shift()!;
      slot.current = p;
      slot.worker.ref();
      slot.worker.postMessage(p.task);
    }
  }

  #spawn(): Slot {
    const worker = new Worker(this.#url, {
      workerData: this.#mark,
      resourceLimits: { maxOldGenerationSizeMb: this.#opts.maxOldGenerationSizeMb, maxYoungGenerationSizeMb: this.#opts.maxYoungGenerationSizeMb },
      // Its own stdout/stderr would be piped through the main thread; it writes nothing.
      stdout: false,
      stderr: false,
    });
    const slot: Slot = { worker };
    worker.on('message', (a: WorkerAnswer) => {
      const p = slot.current;
      slot.current = undefined;
      worker.unref();
      if (p !== undefined && p.task.id === a.id) p.resolve(a);
      this.#dispatch();
    });
    const gone = (e: Error) => {
      const i = this.#slots.indexOf(slot);
      if (i >= 0) this.#slots.splice(i, 1);
      slot.current?.reject(e);
      slot.current = undefined;
      if (!this.#closed) this.#dispatch();
    };
    worker.on('error', gone);
    worker.on('exit', (code) => gone(new Error(`a review worker exited (${code})`)));
    worker.unref();
    this.#slots.push(slot);
    return slot;
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const p of this.#queue.splice(0)) p.reject(new PoolBusyError('the review workers are stopped'));
    await Promise.all(this.#slots.map((s) => s.worker.terminate()));
  }
}
