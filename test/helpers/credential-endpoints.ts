// Stand-ins on 127.0.0.1 for the two credential endpoints a pod can reach on a node, which no
// emulator provides: the EKS Pod Identity agent (a node DaemonSet, AWS_CONTAINER_CREDENTIALS_FULL_URI)
// and the EC2 instance metadata service (IMDSv2, reached through AWS_EC2_METADATA_SERVICE_ENDPOINT).
// Each records the requests it gets, so a test can tell whether the fetcher asked it at all.

import { createServer, type Server } from 'node:http';

export interface CredentialEndpoint {
  endpoint: string;
  /** `METHOD path` of every request, in order. */
  requests: string[];
  /** The access key id the endpoint hands out. */
  accessKeyId: string;
  close(): Promise<void>;
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  return `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
}

const close = (server: Server) => () =>
  new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });

const expiration = () => new Date(Date.now() + 3600_000).toISOString();

/** The EKS Pod Identity agent: answers GET with credentials when the Authorization header is `token`. */
export async function startPodIdentityAgent(token: string, account: string, accessKeyId = 'ASIAPODIDENTITY'): Promise<CredentialEndpoint> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    if (req.headers.authorization !== token) {
      res.writeHead(401).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(
      JSON.stringify({ AccessKeyId: accessKeyId, SecretAccessKey: 'pod-identity-secret', Token: 'pod-identity-session', AccountId: account, Expiration: expiration() }),
    );
  });
  const base = await listen(server);
  return { endpoint: `${base}/v1/credentials`, requests, accessKeyId, close: close(server) };
}

/** IMDSv2 with one instance role: PUT the session token, then list the role and get its credentials. */
export async function startInstanceMetadata(role = 'node-role', accessKeyId = 'ASIANODEINSTANCE'): Promise<CredentialEndpoint> {
  const requests: string[] = [];
  const session = 'imds-session-token';
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    if (req.method === 'PUT' && req.url === '/latest/api/token') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end(session);
      return;
    }
    if (req.headers['x-aws-ec2-metadata-token'] !== session) {
      res.writeHead(401).end();
      return;
    }
    const path = (req.url ?? '').replace(/\/$/, '');
    if (path === '/latest/meta-data/iam/security-credentials') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end(role);
    } else if (path === `/latest/meta-data/iam/security-credentials/${role}`) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          Code: 'Success',
          Type: 'AWS-HMAC',
          AccessKeyId: accessKeyId,
          SecretAccessKey: 'node-instance-secret',
          Token: 'node-instance-session',
          Expiration: expiration(),
          LastUpdated: new Date().toISOString(),
        }),
      );
    } else {
      res.writeHead(404).end();
    }
  });
  const endpoint = await listen(server);
  return { endpoint, requests, accessKeyId, close: close(server) };
}
