// The GitHub Actions workflows cannot run here: they are linted with actionlint (and the
// shellcheck it runs on every `run:` script), and what they publish is checked against the
// package, the chart and the Dockerfile, so a release cannot push images the chart does not pull.

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { describe, expect, it } from 'vitest';
import { findTools, missingToolMessage, REPO_ROOT } from '../helpers/tools.js';

const read = (path: string) => readFileSync(join(REPO_ROOT, path), 'utf8');
const workflow = (name: string) => YAML.parse(read(`.github/workflows/${name}`)) as any;
const tools = findTools(['actionlint', 'shellcheck'] as const);
if (!tools.paths) console.warn(`skipping the workflow lint: ${tools.missing.map(missingToolMessage).join('; ')}`);

describe('workflows', () => {
  it.skipIf(!tools.paths)('pass actionlint, with shellcheck on every run: script', () => {
    const r = spawnSync(tools.paths!.actionlint, ['-shellcheck', tools.paths!.shellcheck, '-no-color'], { cwd: REPO_ROOT, encoding: 'utf8' });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('CI runs the README test command, the one .ci/run runs', () => {
    const steps = workflow('ci.yml').jobs.test.steps as Array<{ run?: string }>;
    const runs = steps.filter((s) => s.run).map((s) => s.run!.trim());
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatch(/ npm run test:all$/);
    expect(read('.ci/run').trim().split('\n').at(-1)).toBe('npm run test:all');
    expect(read('README.md')).toMatch(/^npm run test:all +#/m);
  });

  it('the release publishes the images the chart pulls, from the Dockerfile targets that exist', () => {
    const matrix = workflow('release.yml').jobs.images.strategy.matrix.include as Array<{ target: string; image: string }>;
    const values = YAML.parse(read('charts/aws-secret-injector/values.yaml'));
    const byTarget = Object.fromEntries(matrix.map((m) => [m.target, m.image]));
    expect(byTarget).toEqual({ webhook: values.image.repository, fetcher: values.fetcher.image.repository });
    const stages = [...read('Dockerfile').matchAll(/^FROM\s.*\sAS\s+(\S+)$/gim)].map((m) => m[1]);
    for (const t of Object.keys(byTarget)) expect(stages).toContain(t);
    // Empty tags mean the chart's appVersion, which the release job checks against the tag.
    expect(values.image.tag).toBe('');
    expect(values.fetcher.image.tag).toBe('');
  });

  it('package.json, the chart version and its appVersion agree (the release job refuses a tag that does not)', () => {
    const pkg = JSON.parse(read('package.json'));
    const chart = YAML.parse(read('charts/aws-secret-injector/Chart.yaml'));
    expect(chart.version).toBe(pkg.version);
    expect(chart.appVersion).toBe(pkg.version);
  });

  it("the README's install builds the targets the release pushes, at the chart's appVersion, into the values the chart reads", () => {
    const readme = read('README.md');
    const pkg = JSON.parse(read('package.json'));
    const matrix = workflow('release.yml').jobs.images.strategy.matrix.include as Array<{ target: string }>;
    const loop = /^for target in ([\w ]+); do$/m.exec(readme);
    expect(loop, 'the README builds the images in a `for target in ...; do` loop').not.toBeNull();
    expect(loop![1]!.trim().split(/\s+/).sort()).toEqual(matrix.map((m) => m.target).sort());
    expect(readme).toContain('--platform linux/amd64,linux/arm64 --target "$target"');
    expect(readme).toContain(`--tag "$REGISTRY/$target:${pkg.version}" --push .`);
    // Each target's repository goes into the value the chart pulls it from (the release test above maps them).
    expect(readme).toContain('--set image.repository="$REGISTRY/webhook" --set fetcher.image.repository="$REGISTRY/fetcher"');
  });

  it("the README's published install names the OCI repository the release pushes the chart to", () => {
    const release = workflow('release.yml');
    const chart = YAML.parse(read('charts/aws-secret-injector/Chart.yaml'));
    expect(read('README.md')).toContain(`helm install aws-secret-injector ${release.env.CHART_REPOSITORY}/${chart.name} \\`);
  });

  it('the CHANGELOG has a section for this version', () => {
    expect(read('CHANGELOG.md')).toMatch(new RegExp(`^## ${JSON.parse(read('package.json')).version.replace(/\./g, '\\.')}\\b`, 'm'));
  });

  it('the release uses the helm and Node.js the tests use', () => {
    const release = workflow('release.yml');
    const helmStep = release.jobs.chart.steps.find((s: any) => String(s.uses).startsWith('azure/setup-helm@'));
    expect(`HELM_VERSION="\${HELM_VERSION:-${helmStep.with.version}}"`).toBe(/^HELM_VERSION=.*$/m.exec(read('test/setup/helm.sh'))![0]);
    const nodeMajor = /^NODE_VERSION=(\d+)\./m.exec(read('scripts/node.sh'))![1];
    for (const name of ['ci.yml', 'release.yml']) {
      const w = workflow(name);
      for (const job of Object.values<any>(w.jobs)) {
        for (const s of job.steps) if (String(s.uses).startsWith('actions/setup-node@')) expect(s.with['node-version'], name).toBe(nodeMajor);
      }
    }
  });
});
