#!/usr/bin/env node
// The one command-line program. Each subcommand's module is imported only when that subcommand
// runs, so `fetch` (the init container's hot path) loads nothing of the webhook or certificates.
// Each module parses its own options: `aws-secret-injector <command> --help`.

import { Command } from 'commander';
import pkg from '../package.json' with { type: 'json' };

type Runner = (argv: string[]) => Promise<number>;

// `exitWhenDone`: the run is over when `run` returns, so the process exits then, whatever a client
// library left running (a socket, a kubeconfig credential plugin that never returned); the others
// (`webhook`, `certs manage`) return on a signal.
const commands: Array<{ name: string; summary: string; load: () => Promise<Runner>; exitWhenDone?: (args: string[]) => boolean }> = [
  {
    name: 'webhook',
    summary: 'serve the mutating admission webhook over HTTPS',
    load: async () => (await import('../webhook/main.js')).run,
  },
  {
    name: 'fetch',
    summary: 'fetch secrets and write them as files (the init container)',
    load: async () => (await import('../fetcher/main.js')).run,
  },
  {
    name: 'refresh',
    summary: 'keep the secret files current (the refresh sidecar)',
    load: async () => {
      const { run } = await import('../fetcher/main.js');
      return (argv) => run(['refresh', ...argv]);
    },
  },
  {
    name: 'certs',
    summary: 'generate or bootstrap the webhook serving certificate',
    load: async () => (await import('../certs/cli.js')).run,
    exitWhenDone: (args) => args[0] === 'bootstrap' || args[0] === 'generate',
  },
  {
    name: 'write-through',
    summary: 'serve the opt-in write-through writer: labelled Secrets stored in Secrets Manager, etcd holding a reference',
    load: async () => (await import('../store/writer-main.js')).run,
  },
  {
    name: 'secrets',
    summary: 'write Secret manifests to Secrets Manager and print reference-only manifests (secrets push)',
    load: async () => (await import('../store/push.js')).run,
    exitWhenDone: () => true,
  },
  {
    name: 'inject',
    summary: 'print manifests with every pod template mutated as the webhook would',
    load: async () => (await import('../webhook/inject-cli.js')).run,
  },
];

const program = new Command('aws-secret-injector')
  .description('Gives pods their AWS Secrets Manager and SSM Parameter Store secrets as files.')
  .version(pkg.version, '-V, --version', 'print the version')
  .showHelpAfterError();

for (const c of commands) {
  program
    .command(c.name)
    .description(c.summary)
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .argument('[args...]')
    .action(async (args: string[]) => {
      const run = await c.load();
      process.exitCode = await run(args);
      if (c.exitWhenDone?.(args)) process.exit();
    });
}

// Everything after the subcommand goes to it untouched (its own --help included).
program.passThroughOptions().enablePositionalOptions();
await program.parseAsync(process.argv);
