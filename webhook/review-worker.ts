// The review handler on a worker thread. A review of a pod whose annotations fill the apiserver's
// 256 KiB (a `secrets` list of thousands of entries) takes a few hundred milliseconds of CPU, most
// of it parsing YAML; on the event loop that held every other review, TLS handshakes included,
// for as long. Reviews whose bodies are that large are parsed and reviewed here instead (see
// review-pool.ts), and the event loop stays free for the rest.
//
// This module is its own chunk in the bundle: the pool starts a worker on this very file
// (REVIEW_WORKER_URL), and only on a worker does it do anything when loaded.

import { setPriority } from 'node:os';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { review } from './review.js';
import { reviewTemplate } from './templates.js';
import type { MutationConfig, ReviewResult } from './types.js';

export const REVIEW_WORKER_URL: string = import.meta.url;
/** workerData marking a review worker (the file may be loaded on other threads for its export). */
export const REVIEW_WORKER_MARK = 'aws-secret-injector-review-worker';

/** The route a review came in on, which names its handler. */
export type ReviewRoute = '/mutate' | '/templates';

export interface WorkerTask {
  id: number;
  raw: string;
  config: MutationConfig;
  route?: ReviewRoute;
}

export type WorkerAnswer =
  | { id: number; kind: 'result'; result: ReviewResult }
  | { id: number; kind: 'invalid-json' }
  /** The handler threw: its class only, as the in-process path logs it (the message may quote pod data). */
  | { id: number; kind: 'error'; errorName: string };

export function handleTask(task: WorkerTask): WorkerAnswer {
  let body: unknown;
  try {
    body = JSON.parse(task.raw);
  } catch {
    return { id: task.id, kind: 'invalid-json' };
  }
  try {
    return { id: task.id, kind: 'result', result: (task.route === '/templates' ? reviewTemplate : review)(body, task.config) };
  } catch (e) {
    return { id: task.id, kind: 'error', errorName: e instanceof Error ? e.name : typeof e };
  }
}

/**
 * The worker thread's nice value. On Linux a thread has its own, and the event loop (nice 0)
 * then gets most of a contended core: handshakes and small reviews go first, the large reviews
 * take what is left (at 10, CFS weighs the event loop about nine times a worker).
 */
export const WORKER_NICE = 10;

if (!isMainThread && workerData === REVIEW_WORKER_MARK && parentPort !== null) {
  try {
    // pid 0: the calling thread (Linux); lowering one's own priority needs no privilege.
    setPriority(0, WORKER_NICE);
  } catch {
    // Not Linux, or refused: the worker runs at the process's priority.
  }
  const port = parentPort;
  port.on('message', (task: WorkerTask) => port.postMessage(handleTask(task)));
}
