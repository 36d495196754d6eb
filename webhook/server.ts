// The HTTP shell around the pure review handler: TLS, body limit, content type, status codes,
// one log line and the metrics of each review. It knows nothing of annotations or pods beyond the
// names it logs; everything about the answer comes from the handler.

import type { Server as HttpsServer } from 'node:https';
import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import type { WebhookMetrics } from './metrics.js';
import type { TlsPair } from './tls.js';
import type { AsyncReviewHandler, MutationConfig, ReviewHandler, ReviewResult } from './types.js';

// kube-apiserver accepts request bodies up to 3 MiB; a review may carry the object and the
// oldObject (UPDATE) plus its envelope: 2 × 3 MiB + 1 MiB.
export const BODY_LIMIT_BYTES = 7 * 1024 * 1024;
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
  /** Connections held at once; more are closed as they arrive (the memory of this many stays within the chart's limit). */
  maxConnections: number;
}

export const SERVER_LIMITS: Readonly<ServerLimits> = {
  handshakeMs: 10_000,
  silentMs: 10_000,
  headersMs: 10_000,
  requestMs: 30_000,
  keepAliveMs: 120_000,
  checkMs: 1_000,
  maxConnections: 1_000,
};

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
  logger: Logger;
  metrics: WebhookMetrics;
  tls: Pick<TlsPair, 'cert' | 'key'>;
  lifecycle?: Lifecycle;
  /** SERVER_LIMITS unless set (tests shorten them). */
  limits?: Partial<ServerLimits>;
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

export function buildServer(config: ServerConfig, deps: ServerDeps): WebhookServer {
  const { review, metrics } = deps;
  const lifecycle = deps.lifecycle ?? { draining: false };

  const limits: ServerLimits = { ...SERVER_LIMITS, ...deps.limits };

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
    // A review that reaches us during shutdown is still answered; only the listener is closed.
    return503OnClosing: false,
    forceCloseConnections: 'idle',
  }) as unknown as WebhookServer;

  app.server.maxConnections = limits.maxConnections;
  // One line per burst, not per connection: the burst is what an operator needs to see.
  let dropped = 0;
  app.server.on('drop', () => {
    if (dropped++ === 0) {
      setTimeout(() => {
        deps.logger.warn({ dropped, maxConnections: limits.maxConnections }, 'connections closed on arrival: the server holds its maximum');
        dropped = 0;
      }, 10_000).unref();
    }
  });

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

  // Synchronous and returning nothing, like the pods' handler it wraps: fastify then sends the
  // reply without a promise to settle. The writer's handler answers when its promise settles.
  app.post('/mutate', (req, reply) => {
    // From the request's first byte: receiving and parsing the body count, as they do for the apiserver.
    const seconds = (): number => reply.elapsedTime / 1000;
    const failed = (e: unknown): void => {
      // The handler is meant never to throw; its message may quote pod data, so log its kind only.
      const request = field(req.body, 'request');
      const uid = field(request, 'uid');
      const namespace = field(request, 'namespace');
      metrics.observeReview('error', seconds(), undefined, false);
      req.log.error(
        {
          uid: typeof uid === 'string' ? uid : undefined,
          namespace: typeof namespace === 'string' ? namespace : undefined,
          errorName: e instanceof Error ? e.name : typeof e,
          outcome: 'error',
        },
        'review failed',
      );
      sendError(reply, 500, 'internal error while reviewing');
    };
    const answer = (result: ReviewResult): void => {
      const duration = seconds();
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
        },
        'review',
      );
      reply.send(result.response);
    };
    let result: ReviewResult | Promise<ReviewResult>;
    try {
      result = review(req.body, config.mutation);
    } catch (e) {
      failed(e);
      return;
    }
    if (result instanceof Promise) result.then(answer, failed);
    else answer(result);
  });

  for (const method of ['GET', 'PUT', 'PATCH', 'DELETE'] as const) {
    app.route({
      method,
      url: '/mutate',
      handler: (_req, reply) => sendError(reply.header('allow', 'POST'), 405, 'use POST with an AdmissionReview'),
    });
  }

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) =>
    lifecycle.draining ? sendError(reply, 503, 'shutting down') : reply.send({ status: 'ok' }),
  );
  app.get('/metrics', async (_req, reply) => reply.type(metrics.contentType).send(await metrics.render()));

  return app;
}

/** Puts a new certificate into service: connections made from now on present it. */
export function setServingPair(app: WebhookServer, pair: Pick<TlsPair, 'cert' | 'key'>): void {
  app.server.setSecureContext({ cert: pair.cert, key: pair.key, minVersion: 'TLSv1.2' });
}
