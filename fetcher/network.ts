// The fetcher's network, from its environment: the proxy its AWS calls go through, and the CA
// bundle it trusts besides the public CAs. The AWS SDK reads the endpoint variables itself
// (AWS_ENDPOINT_URL_*, AWS_USE_FIPS_ENDPOINT, AWS_USE_DUALSTACK_ENDPOINT), but not the proxy ones:
// its clients make their own agents, which Node.js's NODE_USE_ENV_PROXY (global agents only)
// does not reach. So the clients get agents built with Node's own proxy support (`proxyEnv`,
// Node.js 24.5+), which honours HTTPS_PROXY / HTTP_PROXY / NO_PROXY as curl does. The
// node-local credential endpoints (EKS Pod Identity agent, instance metadata) keep the SDK's
// own agents: a proxy elsewhere cannot reach them.

import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AgentOptions as HttpAgentOptions } from 'node:http';
import type { AgentOptions as HttpsAgentOptions } from 'node:https';
import { CA_BUNDLE_ENV } from './spec.js';

/** Node.js's built-in proxy support for agents arrived in 24.5.0. */
export const PROXY_MIN_NODE = [24, 5] as const;

type ProxyAgentOptions = { proxyEnv: NodeJS.ProcessEnv };

export interface Network {
  /** Options for the SDK clients' request handler (it makes the agents from them). */
  agents: { httpAgent?: HttpAgentOptions & ProxyAgentOptions; httpsAgent?: HttpsAgentOptions & ProxyAgentOptions };
  /** The proxy URLs in use, for messages. */
  proxies: string[];
}

const PROXY_VARS = ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy'] as const;

function supportsProxy(version: string): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major > PROXY_MIN_NODE[0] || (major === PROXY_MIN_NODE[0] && minor >= PROXY_MIN_NODE[1]);
}

/** The certificates of a PEM bundle, or why there are none. */
export function readCaBundle(path: string): { count: number } | { error: string } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    return { error: `${CA_BUNDLE_ENV} ${path} cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})` };
  }
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  let count = 0;
  for (const block of blocks) {
    try {
      new X509Certificate(block);
      count++;
    } catch {
      return { error: `${CA_BUNDLE_ENV} ${path}: certificate ${count + 1} is not a valid PEM certificate` };
    }
  }
  return count > 0 ? { count } : { error: `${CA_BUNDLE_ENV} ${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)` };
}

/**
 * The network the environment describes, or every reason it cannot be used. Node.js itself has
 * loaded NODE_EXTRA_CA_CERTS at start (a bad file is only a warning there); it is checked here so
 * that a broken bundle fails the fetch saying so, not later as a certificate error.
 */
export function networkFromEnv(env: NodeJS.ProcessEnv, nodeVersion = process.versions.node): Network | { errors: string[] } {
  const errors: string[] = [];
  const proxies: string[] = [];
  for (const name of PROXY_VARS) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    let u: URL | undefined;
    try {
      u = new URL(value);
    } catch {
      // not a URL
    }
    if (u === undefined || (u.protocol !== 'http:' && u.protocol !== 'https:')) {
      errors.push(`${name} must be an http:// or https:// proxy URL`);
    } else proxies.push(`${u.protocol}//${u.host}`);
  }
  if (proxies.length > 0 && !supportsProxy(nodeVersion)) {
    errors.push(`a proxy is set but Node.js ${nodeVersion} cannot use one (${PROXY_MIN_NODE.join('.')} or later is needed): the calls would bypass it`);
  }
  const ca = env[CA_BUNDLE_ENV];
  if (ca !== undefined && ca !== '') {
    const bundle = readCaBundle(ca);
    if ('error' in bundle) errors.push(bundle.error);
  }
  if (errors.length > 0) return { errors };
  if (proxies.length === 0) return { agents: {}, proxies };
  // The SDK's own agent defaults, plus the proxy.
  const base = { keepAlive: true, maxSockets: 50, proxyEnv: env };
  return { agents: { httpAgent: { ...base }, httpsAgent: { ...base } }, proxies: [...new Set(proxies)] };
}
