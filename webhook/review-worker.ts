// The review handler on a worker thread. A review of a pod whose annotations fill the apiserver's
// 256 KiB (a `secrets` list of thousands of entries) takes a few hundred milliseconds of CPU, most
// of it parsing YAML; on the event loop that held every other review, TLS handshakes included,
// for as long. Reviews whose bodies are that large are parsed and reviewed here instead (see
// review-pool.ts), and the event loop stays free for the rest.
//
// This module is its own chunk in the bundle: the pool starts a worker on this very file
// (REVIEW_WORKER_URL), and only on a worker does it do anything when loaded.

import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { review } from './review.js';
import type { MutationConfig, ReviewResult } from './types.js';

export const REVIEW_WORKER_URL: string = import.meta.url;
/** workerData marking a review worker (the file may be loaded on other threads for its export). */
export const REVIEW_WORKER_MARK = 'aws-secret-injector-review-worker';

export interface WorkerTask {
  id: number;
  raw: string;
  config: MutationConfig;
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
    return { id: task.id, kind: 'result', result: review(body, task.config) };
  } catch (e) {
    return { id: task.id, kind: 'error', errorName: e instanceof Error ? e.name : typeof e };
  }
}

if (!isMainThread && workerData === REVIEW_WORKER_MARK && parentPort !== null) {
  const port = parentPort;
  port.on('message', (task: WorkerTask) => port.postMessage(handleTask(task)));
}
