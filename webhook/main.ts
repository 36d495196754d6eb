// `aws-secret-injector webhook`: the only file of the webhook that touches process, env, signals
// and exit codes.

import { pino, type Logger } from 'pino';
import { loadConfig, type WebhookConfig } from './config.js';
import { WebhookMetrics } from './metrics.js';
import { review } from './review.js';
import { ReviewPool } from './review-pool.js';
import { reviewTemplate } from './templates.js';
import { buildMonitorServer, buildServer, setServingPair, type Lifecycle, type ServerDeps, type WebhookServer } from './server.js';
import { describePair, developmentPair, readPair, TlsError, TlsReloader, type TlsPair } from './tls.js';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export async function run(argv: string[]): Promise<number> {
  return runWith(argv, 'webhook', () => review);
}

/**
 * Loads the settings and serves the handler `handlerFor` makes of them (the pods' for `webhook`,
 * the writer's for `write-through`), or prints why the settings do not do.
 */
export async function runWith(
  argv: string[],
  command: 'webhook' | 'write-through',
  handlerFor: (config: WebhookConfig) => ServerDeps['review'] | { errors: string[] },
): Promise<number> {
  const loaded = loadConfig(argv, process.env, command);
  if ('help' in loaded) {
    process.stdout.write(loaded.help);
    return EXIT_OK;
  }
  const handler = 'config' in loaded ? handlerFor(loaded.config) : undefined;
  const errors = 'errors' in loaded ? loaded.errors : handler !== undefined && 'errors' in handler ? handler.errors : [];
  if (errors.length > 0) {
    process.stderr.write(`${command}: invalid configuration:\n${errors.map((e) => `  - ${e}\n`).join('')}`);
    return EXIT_USAGE;
  }
  const config = (loaded as { config: WebhookConfig }).config;
  const logger = pino({ level: config.logLevel, base: { pid: process.pid } });
  try {
    return await serve(config, logger, handler as ServerDeps['review']);
  } catch (e) {
    const message = e instanceof TlsError ? e.message : e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    logger.fatal({ code: (e as { code?: string }).code }, message);
    return EXIT_FAILURE;
  }
}

/** Serves `handler` (the pods' by default; the write-through writer passes its own) until a signal. */
export async function serve(config: WebhookConfig, logger: Logger, handler: ServerDeps['review'] = review): Promise<number> {
  // Settings only: none of them is a secret (the TLS key is named by its path).
  logger.info({ config: { ...config } }, 'configuration');
  let pair: TlsPair;
  if (config.tlsCertFile !== undefined && config.tlsKeyFile !== undefined) {
    pair = await readPair(config.tlsCertFile, config.tlsKeyFile);
    logger.info({ certFile: config.tlsCertFile, ...describePair(pair) }, 'serving certificate loaded');
  } else {
    pair = developmentPair();
    logger.warn(
      describePair(pair),
      'TLS_CERT_FILE and TLS_KEY_FILE are not set: serving a self-signed development certificate for localhost and 127.0.0.1 (not for a cluster)',
    );
  }
  if (pair.notAfter.getTime() <= Date.now()) logger.warn(describePair(pair), 'the serving certificate has expired');

  const metrics = new WebhookMetrics();
  metrics.tlsInService(pair.notAfter);
  const lifecycle: Lifecycle = { draining: false };
  // From the bundle, the worker runs the built module; from sources (tests of this file) it cannot,
  // and large reviews are reviewed in line. The worker runs the pods' and the templates' handlers.
  const worker = await import('./review-worker.js');
  const offload =
    handler === review && /\.m?js$/.test(worker.REVIEW_WORKER_URL) ? new ReviewPool({ url: worker.REVIEW_WORKER_URL, mark: worker.REVIEW_WORKER_MARK }) : undefined;
  // The pods' webhook also reviews workload templates; the writer serves its own handler only.
  const app = buildServer(
    { mutation: config.mutation },
    { review: handler, ...(handler === review ? { reviewTemplate } : {}), logger, metrics, tls: pair, lifecycle, ...(offload ? { offload } : {}) },
  );
  await listen(app, config.host, config.port, logger, '/mutate');
  const monitor = config.monitorPort === undefined ? undefined : buildMonitorServer({ logger, metrics, tls: pair, lifecycle });
  if (monitor !== undefined) await listen(monitor, config.host, config.monitorPort!, logger, '/healthz');

  let reloader: TlsReloader | undefined;
  if (config.tlsCertFile !== undefined && config.tlsKeyFile !== undefined) {
    reloader = new TlsReloader({
      certFile: config.tlsCertFile,
      keyFile: config.tlsKeyFile,
      current: pair,
      apply: (next) => {
        setServingPair(app, next);
        if (monitor !== undefined) setServingPair(monitor, next);
      },
      log: logger,
      onResult: (result, next) => {
        metrics.tlsReload(result);
        if (next) metrics.tlsInService(next.notAfter);
      },
    });
    reloader.start();
  }

  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  reloader?.close();
  lifecycle.draining = true;
  // SIGTERM is Kubernetes stopping the pod: keep answering until the apiserver has seen the pod
  // leave the endpoints. SIGINT is a person at a terminal: no delay.
  if (signal === 'SIGTERM' && config.shutdownDelaySeconds > 0) {
    logger.info({ signal, delaySeconds: config.shutdownDelaySeconds }, 'shutting down: not ready, still serving until the delay ends');
    await new Promise((r) => setTimeout(r, config.shutdownDelaySeconds * 1000));
  }
  logger.info({ signal, timeoutSeconds: config.shutdownTimeoutSeconds }, 'shutting down: no new connections, finishing reviews in flight');
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    logger.error({ timeoutSeconds: config.shutdownTimeoutSeconds }, 'reviews still in flight at the shutdown timeout; closing their connections');
    app.server.closeAllConnections();
  }, config.shutdownTimeoutSeconds * 1000);
  timer.unref();
  await app.close();
  clearTimeout(timer);
  await monitor?.close();
  await offload?.close();
  logger.info('stopped');
  return timedOut ? EXIT_FAILURE : EXIT_OK;
}

async function listen(app: WebhookServer, wantedHost: string, wantedPort: number, logger: Logger, path: string): Promise<void> {
  try {
    await app.listen({ host: wantedHost, port: wantedPort });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // `::` where the kernel has IPv6 off: listen on every IPv4 address instead.
    if (wantedHost !== '::' || (code !== 'EAFNOSUPPORT' && code !== 'EADDRNOTAVAIL')) throw e;
    await app.listen({ host: '0.0.0.0', port: wantedPort });
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : wantedPort;
  const host = typeof address === 'object' && address !== null ? address.address : wantedHost;
  const shown = host === '::' || host === '0.0.0.0' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  logger.info({ address: host, port, url: `https://${shown}:${port}${path}` }, 'listening');
}
