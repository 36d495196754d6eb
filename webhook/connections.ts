// Who may hold the server's connections. One client must not be able to take them all: the
// apiserver's next review, on a new connection, would be refused and every pod that asked for
// secrets with it. So each source address gets a share of the cap; when the cap is reached, an
// idle connection (no request in flight) of the address holding the most is closed to make room,
// and a new connection is refused only when every connection is busy. Keep-alive connections also
// end after an age and a number of requests (the answer says `Connection: close`), so no client
// keeps one for good.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server } from 'node:net';
import type { Socket } from 'node:net';

export interface ConnectionLimits {
  /** Connections held at once. */
  maxConnections: number;
  /** Connections one source address may hold at once. */
  maxPerAddress: number;
  /** A keep-alive connection older than this is closed after its next answer. */
  maxAgeMs: number;
  /** A keep-alive connection is closed after this many answers. */
  maxRequests: number;
}

export type Refusal = 'address-share' | 'all-busy';

interface Entry {
  socket: Socket;
  address: string;
  opened: number;
  requests: number;
  inFlight: number;
  /** Ends a request of this connection: one function per connection, not one per request. */
  done: () => void;
}

const keyOf = (s: { remoteAddress?: string | undefined; remotePort?: number | undefined }): string => `${s.remoteAddress ?? ''}|${s.remotePort ?? ''}`;

/**
 * Tracks the TCP connections of `server` (an https server: a connection counts from TCP accept,
 * TLS handshake included) and applies `limits`. Requests are matched to their connection by the
 * client's address and port.
 */
export class ConnectionGuard {
  readonly #entries = new Map<string, Entry>();
  /** A request's socket (the TLS socket over the accepted one) to its entry, found once per connection. */
  readonly #bySocket = new WeakMap<object, Entry | null>();
  readonly #perAddress = new Map<string, number>();
  readonly #limits: ConnectionLimits;
  readonly #now: () => number;
  /** Connections refused and idle ones closed to make room, since the start. */
  readonly counts = { refused: { 'address-share': 0, 'all-busy': 0 } as Record<Refusal, number>, evicted: 0, retired: 0 };

  constructor(
    server: Server,
    limits: ConnectionLimits,
    private readonly onEvent: (event: Refusal | 'evicted', address: string) => void = () => {},
    now: () => number = () => performance.now(),
  ) {
    this.#limits = limits;
    this.#now = now;
    // First among the listeners: a connection refused here never reaches TLS.
    server.prependListener('connection', (socket: Socket) => this.#admit(socket));
    // First too, so the header is set before the handler can answer.
    server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => this.#request(req, res));
  }

  /** Connections held now, and how many of them one address holds at most. */
  get size(): number {
    return this.#entries.size;
  }

  held(address: string): number {
    return this.#perAddress.get(address) ?? 0;
  }

  #admit(socket: Socket): void {
    const address = socket.remoteAddress ?? '';
    if (this.held(address) >= this.#limits.maxPerAddress) return this.#refuse(socket, 'address-share', address);
    if (this.#entries.size >= this.#limits.maxConnections && !this.#evictIdle()) return this.#refuse(socket, 'all-busy', address);
    const key = keyOf(socket);
    const entry: Entry = { socket, address, opened: this.#now(), requests: 0, inFlight: 0, done: () => void entry.inFlight-- };
    this.#entries.set(key, entry);
    this.#perAddress.set(address, this.held(address) + 1);
    socket.once('close', () => this.#forget(key, entry));
  }

  #forget(key: string, entry: Entry): void {
    if (this.#entries.get(key) !== entry) return;
    this.#entries.delete(key);
    const n = this.held(entry.address) - 1;
    if (n > 0) this.#perAddress.set(entry.address, n);
    else this.#perAddress.delete(entry.address);
  }

  #refuse(socket: Socket, why: Refusal, address: string): void {
    this.counts.refused[why]++;
    this.onEvent(why, address);
    socket.destroy();
  }

  /** Closes the oldest idle connection of the address holding the most; false when none is idle. */
  #evictIdle(): boolean {
    let victim: [string, Entry] | undefined;
    for (const [key, e] of this.#entries) {
      if (e.inFlight > 0) continue;
      if (victim === undefined || this.held(e.address) > this.held(victim[1].address)) victim = [key, e];
      // Map order is insertion order: the first idle one of an address is its oldest.
    }
    if (victim === undefined) return false;
    const [key, e] = victim;
    this.#forget(key, e);
    this.counts.evicted++;
    this.onEvent('evicted', e.address);
    e.socket.destroy();
    return true;
  }

  #request(req: IncomingMessage, res: ServerResponse): void {
    let entry = this.#bySocket.get(req.socket);
    if (entry === undefined) {
      entry = this.#entries.get(keyOf(req.socket)) ?? null;
      this.#bySocket.set(req.socket, entry);
    }
    if (entry === null) return;
    entry.requests++;
    entry.inFlight++;
    // A response emits close once.
    res.on('close', entry.done);
    if (entry.requests >= this.#limits.maxRequests || this.#now() - entry.opened >= this.#limits.maxAgeMs) {
      this.counts.retired++;
      res.setHeader('connection', 'close');
    }
  }
}
