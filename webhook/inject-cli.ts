// `aws-secret-injector inject -f manifest.yaml` (or `-f -` for stdin): prints the manifests with
// every pod template mutated as the webhook would. The configuration is the webhook's: the chart's
// values files (`--values`, merged as helm merges them) and, over them, the same environment
// variables the webhook reads (FETCHER_IMAGE, NATIVE_SIDECARS, FETCHER_HTTPS_PROXY, ...).

import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { checkValues, envFromValues, mergeValues, parseValues } from './chart-values.js';
import { loadConfig, OPTIONS, type OptionKey } from './config.js';
import { injectManifests } from './inject.js';

export const EXIT_OK = 0;
export const EXIT_DENIED = 1;
export const EXIT_USAGE = 2;

/** The webhook options of its HTTP server; every other option shapes the mutation. */
export const SERVER_OPTIONS: readonly OptionKey[] = ['host', 'port', 'monitorPort', 'tlsCertFile', 'tlsKeyFile', 'logLevel', 'shutdownDelaySeconds', 'shutdownTimeoutSeconds'];
const MUTATION_OPTIONS = (Object.keys(OPTIONS) as OptionKey[]).filter((k) => !SERVER_OPTIONS.includes(k));

export interface Io {
  stdin: () => string;
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  env: NodeJS.ProcessEnv;
}

export const processIo: Io = {
  stdin: () => readFileSync(0, 'utf8'),
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  env: process.env,
};

/**
 * Parses `argv` with a command whose output goes to `output()` (exitOverride, configureOutput):
 * undefined to go on, or the exit code after --help (0) or a usage error (2), its text written.
 */
export function parseArgs(cmd: Command, argv: string[], io: Pick<Io, 'stdout' | 'stderr'>, output: () => string): number | undefined {
  try {
    cmd.parse(argv, { from: 'user' });
    return undefined;
  } catch (e) {
    const out = output();
    if (e instanceof CommanderError && (e.code === 'commander.helpDisplayed' || e.code === 'commander.help')) {
      io.stdout(out);
      return EXIT_OK;
    }
    io.stderr(out.endsWith('\n') ? out : `${out}\n`);
    return EXIT_USAGE;
  }
}

export async function run(argv: string[], io: Io = processIo): Promise<number> {
  let out = '';
  const cmd = new Command('aws-secret-injector inject')
    .description(
      'Prints Kubernetes manifests with every pod template (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet,\n' +
        'ReplicationController, Job, CronJob, and those inside a List) mutated exactly as the webhook would.\n' +
        'Other objects pass through. Invalid secret annotations: the webhook\'s denial on stderr, exit 1.\n' +
        "Configuration: the chart's values files (--values), then the webhook's environment variables over them:\n" +
        `${MUTATION_OPTIONS.map((k) => OPTIONS[k].env).join(', ')}.`,
    )
    .requiredOption('-f, --filename <file>', 'manifest file, or - for standard input')
    .option('--values <file>', "the chart's values file the webhook is installed with, as helm install --values takes it (repeatable, later files win)", (v: string, all: string[]) => [...all, v], [] as string[])
    .option('--kube-version <version>', "the cluster's Kubernetes version, for values helm derives from it (nativeSidecars: null)")
    .allowExcessArguments(false)
    .exitOverride()
    .configureOutput({ writeOut: (s) => (out += s), writeErr: (s) => (out += s) });
  const parsed = parseArgs(cmd, argv, io, () => out);
  if (parsed !== undefined) return parsed;
  const opts = cmd.opts<{ filename: string; values: string[]; kubeVersion?: string }>();
  const file = opts.filename;

  let values: Record<string, unknown> = {};
  for (const name of opts.values) {
    let parsed;
    try {
      parsed = parseValues(readFileSync(name, 'utf8'), name);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      parsed = { error: `cannot read ${name}: ${err.code ?? err.message}` };
    }
    if ('error' in parsed) {
      io.stderr(`inject: ${parsed.error}\n`);
      return EXIT_USAGE;
    }
    values = mergeValues(values, parsed);
  }
  const problems = checkValues(values);
  if (problems.length > 0) {
    io.stderr(`inject: the values do not match the chart's schema (helm install would refuse them):\n${problems.map((p) => `  - ${p}\n`).join('')}`);
    return EXIT_USAGE;
  }
  const env: NodeJS.ProcessEnv = envFromValues(values, opts.kubeVersion);
  for (const k of MUTATION_OPTIONS) {
    const name = OPTIONS[k].env;
    if (io.env[name] !== undefined) env[name] = io.env[name];
  }
  const loaded = loadConfig([], env);
  if (!('config' in loaded)) {
    const errors = 'errors' in loaded ? loaded.errors : ['unexpected help output'];
    io.stderr(`inject: invalid configuration:\n${errors.map((e) => `  - ${e}\n`).join('')}`);
    return EXIT_USAGE;
  }

  let text: string;
  try {
    text = file === '-' ? io.stdin() : readFileSync(file, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    io.stderr(`inject: cannot read ${file === '-' ? 'standard input' : file}: ${err.code ?? err.message}\n`);
    return EXIT_USAGE;
  }

  const result = injectManifests(text, loaded.config.mutation);
  for (const w of result.warnings) io.stderr(`Warning: ${w}\n`);
  if (result.errors.length > 0) {
    for (const e of result.errors) io.stderr(`error: ${e}\n`);
    return EXIT_DENIED;
  }
  io.stdout(result.output);
  return EXIT_OK;
}
