// The HTTP shell around the pure review handler: TLS, body limit, content type, status codes,
// one log line and the metrics of each review. It knows nothing of annotations or pods beyond the
// names it logs; everything about the answer comes from the handler.

import type { Server as HttpsServer } from 'node:https';
import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { ConnectionGuard } from './connections.js';
import type { WebhookMetrics } from './metrics.js';
import type { TlsPair } from './tls.js';
import { AbandonedError, PoolBusyError, type ReviewOffload } from './review-pool.js';
import type { ReviewRoute } from './review-worker.js';
import type { AsyncReviewHandler, MutationConfig, ReviewHandler, ReviewResult } from './types.js';

// kube-apiserver accepts request bodies up to 3 MiB; a review may carry the object and the
// oldObject (UPDATE) plus its envelope: 2 × 3 MiB + 1 MiB.
export const BODY_LIMIT_BYTES = 7 * 1024 * 1024;
/**
 * Bodies larger than this are parsed and reviewed on a worker thread. Ordinary pods stay well
 * below it (an annotated pod of 100 containers is 37 KiB); what reaches it carries annotations of
 * tens of KiB, whose parsing would hold the event loop for tens to hundreds of milliseconds.
 */
export const OFFLOAD_BYTES = 64 * 1024;

/** A review body kept as text for a worker thread. */
class LargeBody {
  constructor(readonly raw: string) {}
}
/**
 * How long the server waits on a client, and how many it holds. The apiserver completes TLS and
 * writes its review at once, abandons a call after the webhook's timeoutSeconds (at most 30 s),
 * and keeps an idle connection for the next review up to 90 s (Go's IdleConnTimeout). A review it
 * writes onto a connection the server is closing fails (it is not retried), so the keep-alive idle
 * time must outlast the apiserver's; everything before the first request can be much shorter.
 * Nothing else is needed from a client: without these, a connection that completed TLS and never
 * sent a byte stayed open for good, and each holds about 40 KB.
 */
export interface ServerLimits {
  /** TCP accepted, TLS handshake not finished. */
  handshakeMs: number;
  /** TLS done and no byte of a request, or the first request stalled mid-way. */
  silentMs: number;
  /** From a request's first byte to the end of its headers. */
  headersMs: number;
  /** From a request's first byte to the end of its body. */
  requestMs: number;
  /** After an answer, for the next request on the connection. */
  keepAliveMs: number;
  /** How often the header and request deadlines are checked (Node's default of 30 s let them run up to 30 s over). */
  checkMs: number;
  /**
   * Connections held at once (the memory of this many stays within the chart's limit). When all
   * are held, an idle one of the address holding the most is closed for each new one; a new one
   * is refused only while every connection has a request in flight.
   */
  maxConnections: number;
  /**
   * Connections one source address may hold: a quarter of the cap, so one client, or three, cannot
   * take them all. The apiserver holds one per review in flight (HTTP/1.1), and its own limit on
   * mutating requests in flight is 200 by default.
   */
  maxPerAddress: number;
  /** A keep-alive connection older than this is closed after its next answer. */
  maxAgeMs: number;
  /** A keep-alive connection is closed after this many answers. */
  maxRequests: number;
}

export const SERVER_LIMITS: Readonly<ServerLimits> = {
  handshakeMs: 10_000,
  silentMs: 10_000,
  headersMs: 10_000,
  requestMs: 30_000,
  keepAliveMs: 120_000,
  checkMs: 1_000,
  maxConnections: 1_000,
  maxPerAddress: 250,
  maxAgeMs: 300_000,
  maxRequests: 1_000,
};

/** The monitoring port (probes, metrics): a kubelet and a scraper or two, never many. */
export const MONITOR_LIMITS: Readonly<ServerLimits> = { ...SERVER_LIMITS, maxConnections: 64, maxPerAddress: 16 };

export interface ServerConfig {
  mutation: MutationConfig;
}

/** Set `draining` to report not ready and close each connection after its answer (shutdown). */
export interface Lifecycle {
  draining: boolean;
}

export interface ServerDeps {
  /** The pods' handler (synchronous), or the write-through writer's (it awaits AWS). */
  review: ReviewHandler | AsyncReviewHandler;
  /** Workload pod templates, at POST /templates (served when set: by the pods' webhook). */
  reviewTemplate?: ReviewHandler;
  logger: Logger;
  metrics: WebhookMetrics;
  tls: Pick<TlsPair, 'cert' | 'key'>;
  lifecycle?: Lifecycle;
  /** SERVER_LIMITS unless set (tests shorten them). */
  limits?: Partial<ServerLimits>;
  /** Where reviews over OFFLOAD_BYTES are parsed and reviewed (worker threads); unset: in line. */
  offload?: ReviewOffload;
}

export type WebhookServer = FastifyInstance<HttpsServer>;

// Fixed messages per error code: a parser's own message can quote the body it choked on.
const MESSAGES: Record<string, string> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'the request body is not valid JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'the request body is empty; expected an AdmissionReview',
  FST_ERR_CTP_BODY_TOO_LARGE: `the request body is larger than ${BODY_LIMIT_BYTES} bytes`,
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'the content type must be application/json',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'the request body does not match its Content-Length',
};

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

function sendError(reply: FastifyReply, statusCode: number, message: string): FastifyReply {
  return reply.code(statusCode).send({ statusCode, error: REASONS[statusCode] ?? 'Error', message });
}

/** The path of a request, without its query and cut short: it is the client's text. */
const pathOf = (url: string): string => url.split('?')[0]!.slice(0, 200);

/** A string field of an object, or undefined; for naming a review in logs before it is parsed. */
function field(value: unknown, key: string): unknown {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>)[key] : undefined;
}

/** The fastify instance over TLS with `limits` applied, its connections held to their share. */
function tlsApp(deps: Pick<ServerDeps, 'logger' | 'tls'>, limits: ServerLimits, port: 'review' | 'monitor'): { app: WebhookServer; guard: ConnectionGuard } {
  const app = Fastify({
    loggerInstance: deps.logger,
    https: {
      cert: deps.tls.cert,
      key: deps.tls.key,
      minVersion: 'TLSv1.2',
      handshakeTimeout: limits.handshakeMs,
      headersTimeout: limits.headersMs,
      connectionsCheckingInterval: limits.checkMs,
    },
    bodyLimit: BODY_LIMIT_BYTES,
    requestTimeout: limits.requestMs,
    keepAliveTimeout: limits.keepAliveMs,
    // Socket inactivity: it covers the connection that never sends a request, which Node's header
    // and request deadlines (counted from a request's first byte) never see. Once a connection has
    // answered, the keep-alive time governs it instead.
    connectionTimeout: limits.silentMs,
    // One line per review is written below; fastify's per-request lines would double it.
    logController: new LogController({ disableRequestLogging: true }),
    // That line names the review (uid, namespace, pod): a child logger per request binding
    // fastify's request counter would cost every review an object and its serialised bindings.
    childLoggerFactory: (logger) => logger,
    // A review that reaches us during shutdown is still answered; only the listener is closed.
    return503OnClosing: false,
    forceCloseConnections: 'idle',
  }) as unknown as WebhookServer;

  // A backstop only: the guard below keeps the count at maxConnections, and a connection it
  // closes still counts until its socket has closed.
  app.server.maxConnections = limits.maxConnections + limits.maxPerAddress;
  // One line per burst, not per connection: the burst is what an operator needs to see.
  let burst: Record<string, number> | undefined;
  const guard = new ConnectionGuard(app.server, limits, (event) => {
    if (burst === undefined) {
      burst = {};
      setTimeout(() => {
        deps.logger.warn(
          { port, ...burst, maxConnections: limits.maxConnections, maxPerAddress: limits.maxPerAddress },
          'connections closed: one address over its share (address-share), or idle ones closed for new ones (evicted), or all busy (all-busy)',
        );
        burst = undefined;
      }, 10_000).unref();
    }
    burst[event] = (burst[event] ?? 0) + 1;
  });
  return { app, guard };
}

/** Health and metrics routes; on the monitoring port, and on the review port for callers that use it there. */
function monitorRoutes(app: WebhookServer, metrics: WebhookMetrics, lifecycle: Lifecycle): void {
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) =>
    lifecycle.draining ? sendError(reply, 503, 'shutting down') : reply.send({ status: 'ok' }),
  );
  app.get('/metrics', async (_req, reply) => reply.type(metrics.contentType).send(await metrics.render()));
}

/**
 * The monitoring server: /healthz, /readyz and /metrics on a port of their own, so a client that
 * saturates the review port cannot fail the kubelet's probes and have the pod restarted.
 */
export function buildMonitorServer(deps: Pick<ServerDeps, 'logger' | 'tls' | 'metrics' | 'lifecycle' | 'limits'>): WebhookServer {
  const { app } = tlsApp(deps, { ...MONITOR_LIMITS, ...deps.limits }, 'monitor');
  app.setNotFoundHandler((req, reply) => sendError(reply, 404, `no route ${req.method} ${pathOf(req.url)}`));
  monitorRoutes(app, deps.metrics, deps.lifecycle ?? { draining: false });
  return app;
}

export function buildServer(config: ServerConfig, deps: ServerDeps): WebhookServer {
  const { review, metrics } = deps;
  const lifecycle = deps.lifecycle ?? { draining: false };
  const limits: ServerLimits = { ...SERVER_LIMITS, ...deps.limits };
  const { app } = tlsApp(deps, limits, 'review');

  // JSON only: without the text/plain parser, every other content type is a 415.
  app.removeContentTypeParser('text/plain');

  app.addHook('preClose', async () => {
    lifecycle.draining = true;
  });
  // While draining every answer closes its connection: the apiserver's next review opens a new
  // one (to another replica once this one has left the endpoints), and a review in flight on a
  // keep-alive connection ends the connection with it instead of holding the process open.
  // (A callback hook: an async one costs every answer a promise.)
  app.addHook('onSend', (_req, reply, payload, done) => {
    if (lifecycle.draining) reply.header('connection', 'close');
    done(null, payload);
  });

  app.setErrorHandler((err: FastifyError, req, reply) => {
    const statusCode = err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (statusCode < 500) {
      req.log.info({ method: req.method, path: pathOf(req.url), statusCode, code: err.code }, 'request rejected');
      return sendError(reply, statusCode, MESSAGES[err.code] ?? (REASONS[statusCode] ?? 'bad request').toLowerCase());
    }
    req.log.error({ method: req.method, path: pathOf(req.url), code: err.code, errorName: err.name }, 'request failed');
    return sendError(reply, 500, 'internal error');
  });

  app.setNotFoundHandler((req, reply) => sendError(reply, 404, `no route ${req.method} ${pathOf(req.url)}`));

  // A large review is handed over as text, to be parsed and reviewed on a worker thread.
  const offload = deps.offload;
  if (offload !== undefined) {
    const json = app.getDefaultJsonParser('error', 'error');
    app.removeContentTypeParser('application/json');
    app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
      const text = typeof body === 'string' ? body : body.toString('utf8');
      if (text.length > OFFLOAD_BYTES) done(null, new LargeBody(text));
      else json(req, text, done);
    });
  }

  /** The handler threw (never meant to): its message may quote pod data, so log its kind only. */
  const failed = (req: FastifyRequest, reply: FastifyReply, body: unknown, errorName: string, duration: number): void => {
    const request = field(body, 'request');
    const uid = field(request, 'uid');
    const namespace = field(request, 'namespace');
    metrics.observeReview('error', duration, undefined, false);
    req.log.error(
      { uid: typeof uid === 'string' ? uid : undefined, namespace: typeof namespace === 'string' ? namespace : undefined, errorName, outcome: 'error' },
      'review failed',
    );
    sendError(reply, 500, 'internal error while reviewing');
  };

  /** `worker`: reviewed on a worker thread (a large body), said on the review's log line. */
  const answer = (req: FastifyRequest, reply: FastifyReply, result: ReviewResult, duration: number, worker?: true): void => {
    const durationMs = Math.round(duration * 1e6) / 1e3;
    if (result.kind === 'bad-request') {
      metrics.observeReview('bad-request', duration, undefined, false);
      req.log.info({ outcome: 'bad-request', reason: result.message, durationMs }, 'review');
      sendError(reply, result.statusCode, result.message);
      return;
    }
    const l = result.log;
    metrics.observeReview(l.outcome, duration, l.namespace, l.dryRun);
    // One line per review, so the review's names go on the line itself: a child logger for them
    // would serialise them once more for nothing.
    req.log.info(
      {
        uid: l.uid,
        namespace: l.namespace,
        name: l.name,
        operation: l.operation,
        kind: l.kind,
        dryRun: l.dryRun,
        outcome: l.outcome,
        allowed: result.response.response.allowed,
        warnings: l.warnings,
        reason: l.reason,
        durationMs,
        worker,
      },
      'review',
    );
    reply.send(result.response);
  };

  // Synchronous and returning nothing, like the handler it wraps: fastify then sends the reply
  // without a promise to settle.
  const serve = (review: ReviewHandler | AsyncReviewHandler, route: ReviewRoute) => (req: FastifyRequest, reply: FastifyReply): void => {
    // From the request's first byte: receiving and parsing the body count, as they do for the apiserver.
    const seconds = (): number => reply.elapsedTime / 1000;
    if (req.body instanceof LargeBody && offload !== undefined) {
      // Waiting for a worker is not a silent client: the inactivity deadline must not end it.
      req.socket.setTimeout(limits.requestMs);
      const gone = new AbortController();
      reply.raw.once('close', () => {
        if (!reply.raw.writableFinished) gone.abort();
      });
      offload.run(req.body.raw, config.mutation, route, gone.signal).then(
        (a) => {
          if (a.kind === 'result') answer(req, reply, a.result, seconds(), true);
          else if (a.kind === 'error') failed(req, reply, undefined, a.errorName, seconds());
          else {
            req.log.info({ method: req.method, path: pathOf(req.url), statusCode: 400, code: 'FST_ERR_CTP_INVALID_JSON_BODY' }, 'request rejected');
            sendError(reply, 400, MESSAGES.FST_ERR_CTP_INVALID_JSON_BODY!);
          }
        },
        (e: Error) => {
          if (e instanceof AbandonedError) {
            req.log.info({ method: req.method, path: pathOf(req.url), reason: e.message }, 'large review not reviewed: its client went away while it waited for a worker');
            return;
          }
          if (!(e instanceof PoolBusyError)) return failed(req, reply, undefined, e.name, seconds());
          req.log.warn({ method: req.method, path: pathOf(req.url), statusCode: 503, reason: e.message }, 'large review refused: every review worker is busy');
          sendError(reply, 503, 'too many large reviews at once; try again');
        },
      );
      return;
    }
    const threw = (e: unknown): void => failed(req, reply, req.body, e instanceof Error ? e.name : typeof e, seconds());
    let result: ReviewResult | Promise<ReviewResult>;
    try {
      result = review(req.body, config.mutation);
    } catch (e) {
      threw(e);
      return;
    }
    // The pods' handler answers at once; the writer's when its promise settles.
    if (result instanceof Promise) result.then((r) => answer(req, reply, r, seconds()), threw);
    else answer(req, reply, result, seconds());
  };

  const routes: Array<[ReviewRoute, ReviewHandler | AsyncReviewHandler]> = [['/mutate', review]];
  if (deps.reviewTemplate !== undefined) routes.push(['/templates', deps.reviewTemplate]);
  for (const [url, handler] of routes) {
    app.post(url, serve(handler, url));
    for (const method of ['GET', 'PUT', 'PATCH', 'DELETE'] as const) {
      app.route({
        method,
        url,
        handler: (_req, reply) => sendError(reply.header('allow', 'POST'), 405, 'use POST with an AdmissionReview'),
      });
    }
  }

  monitorRoutes(app, metrics, lifecycle);

  return app;
}

/** Puts a new certificate into service: connections made from now on present it. */
export function setServingPair(app: WebhookServer, pair: Pick<TlsPair, 'cert' | 'key'>): void {
  app.server.setSecureContext({ cert: pair.cert, key: pair.key, minVersion: 'TLSv1.2' });
}
