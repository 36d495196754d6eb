// AWS as a pod reaches it, for the benches: moto (installed by test/setup/moto.sh) behind a TLS
// front under the real host names (sts.<region>.amazonaws.com, secretsmanager.<region>.amazonaws.com),
// its CA trusted through NODE_EXTRA_CA_CERTS. The names point at 127.0.0.1:443 in a private mount
// and network namespace (`unshare`, root only) whose /etc/hosts says so: `enterNamespace()`
// re-runs the calling script inside one. Without it (not root, no unshare) the front listens on a
// free port and the processes reach it through AWS_ENDPOINT_URL, which the front returns in `env`.

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { freePort } from './free-port.mjs';

export const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

/**
 * In the parent: runs this script again in a private mount and network namespace and exits with
 * its status. In the re-run (or where no namespace can be made): whether it is inside one, and a
 * note when not.
 */
export function enterNamespace() {
  if (process.env.BENCH_NAMESPACE === undefined && process.getuid?.() === 0 && has('unshare') && has('ip') && has('mount')) {
    const r = spawnSync('unshare', ['--mount', '--net', process.execPath, ...process.execArgv, process.argv[1], ...process.argv.slice(2)], {
      stdio: 'inherit',
      env: { ...process.env, BENCH_NAMESPACE: '1' },
    });
    if (r.status !== null && r.status !== 2 && r.error === undefined) process.exit(r.status);
    return { inNamespace: false, note: 'unshare failed: running without a private network namespace' };
  }
  const inNamespace = process.env.BENCH_NAMESPACE === '1' && spawnSync('ip', ['link', 'set', 'lo', 'up']).status === 0;
  return { inNamespace, note: inNamespace ? undefined : 'no private network namespace (needs root, unshare, ip)' };
}

/**
 * Starts moto and the TLS front (certificates made with openssl in `work`). `motoUrl` is moto
 * itself (plain HTTP, for the bench's own set-up calls); `env` is what a process needs to reach
 * AWS through the front as a pod would; `close()` stops both. The front must be served by an
 * event loop that is free: a bench that waits on a child synchronously runs the child elsewhere.
 */
export async function startAwsFront({ work, region, inNamespace, motoServer, cpus }) {
  const hosts = [`sts.${region}.amazonaws.com`, `secretsmanager.${region}.amazonaws.com`];
  if (!has('openssl')) throw new Error("openssl is needed to make the TLS front's certificates");
  const pem = (name) => join(work, name);
  const openssl = (...args) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=bench CA', '-keyout', pem('ca.key'), '-out', pem('ca.pem'));
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=aws', '-keyout', pem('front.key'), '-out', pem('front.csr'));
  writeFileSync(pem('ext'), `subjectAltName=${[...hosts.map((h) => `DNS:${h}`), 'IP:127.0.0.1'].join(',')}\n`);
  openssl('x509', '-req', '-in', pem('front.csr'), '-CA', pem('ca.pem'), '-CAkey', pem('ca.key'), '-CAcreateserial', '-days', '1', '-extfile', pem('ext'), '-out', pem('front.pem'));

  const motoPort = await freePort();
  const moto = spawn(cpus ? 'taskset' : motoServer, [...(cpus ? ['-c', cpus, motoServer] : []), '-H', '127.0.0.1', '-p', String(motoPort)], { stdio: 'ignore' });
  const motoUrl = `http://127.0.0.1:${motoPort}`;
  const stopMoto = () => moto.exitCode === null && moto.kill('SIGTERM');
  for (let i = 0; ; i++) {
    if (i > 300) {
      stopMoto();
      throw new Error('moto did not start within 30 s');
    }
    try {
      if ((await fetch(`${motoUrl}/moto-api/data.json`)).ok) break;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }

  const front = createTlsServer({ key: readFileSync(pem('front.key')), cert: readFileSync(pem('front.pem')) }, (tls) => {
    const plain = connect(motoPort, '127.0.0.1');
    tls.pipe(plain).pipe(tls);
    const close = () => {
      tls.destroy();
      plain.destroy();
    };
    tls.on('error', close);
    plain.on('error', close);
  });
  const port = await new Promise((res, rej) => {
    front.on('error', rej);
    front.listen(inNamespace ? 443 : 0, '127.0.0.1', () => res(front.address().port));
  });
  let env = { NODE_EXTRA_CA_CERTS: pem('ca.pem') };
  if (inNamespace) {
    const etcHosts = join(work, 'hosts');
    writeFileSync(etcHosts, `127.0.0.1 localhost\n${hosts.map((h) => `127.0.0.1 ${h}`).join('\n')}\n`);
    execFileSync('mount', ['--bind', etcHosts, '/etc/hosts']);
  } else env = { ...env, AWS_ENDPOINT_URL: `https://127.0.0.1:${port}` };
  return {
    motoUrl,
    env,
    where: inNamespace ? `as ${hosts.join(' and ')} (private network namespace)` : `at https://127.0.0.1:${port}`,
    close() {
      front.close();
      stopMoto();
    },
  };
}

/**
 * A pod's IRSA: the projected token file (moto does not check its signature) and the variables
 * EKS's pod identity webhook sets, with what reaches the front (`front.env`).
 */
export function irsaEnv({ work, region, front, account = '123456789012' }) {
  const tokenFile = join(work, 'token');
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  writeFileSync(tokenFile, `${b64({ alg: 'RS256' })}.${b64({ sub: 'system:serviceaccount:bench:app', aud: 'sts.amazonaws.com' })}.sig`);
  return {
    PATH: process.env.PATH,
    AWS_REGION: region,
    AWS_DEFAULT_REGION: region,
    AWS_STS_REGIONAL_ENDPOINTS: 'regional',
    AWS_ROLE_ARN: `arn:aws:iam::${account}:role/bench`,
    AWS_WEB_IDENTITY_TOKEN_FILE: tokenFile,
    ...front.env,
  };
}

/**
 * `<work>/volumes`, where the secrets volumes go: a tmpfs in the private namespace, as a pod's
 * memory-backed emptyDir (its pages count in the writer's memory cgroup). `note` says when it is
 * not one; `unmount()` undoes the mount.
 */
export function secretsVolumes(work, inNamespace) {
  const dir = join(work, 'volumes');
  mkdirSync(dir);
  const mounted = inNamespace && spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', dir]).status === 0;
  return {
    dir,
    note: mounted ? undefined : "the secrets volume is a directory of the machine's /tmp, not a tmpfs",
    unmount: () => mounted && spawnSync('umount', [dir]),
  };
}
