import { defineConfig } from 'vitest/config';

// Every suite runs on the Node.js major both images ship; `npm run test:all` (scripts/node.sh)
// brings it when the machine's Node is another. The run's first line names the version.
const NODE_MAJOR = '24';
if (process.versions.node.split('.')[0] !== NODE_MAJOR) {
  throw new Error(
    `the tests run on Node.js ${NODE_MAJOR}, the images' runtime, not ${process.version}: ` +
      `run \`npm run test:all\`, or \`bash scripts/node.sh npx vitest run ...\``,
  );
}
console.log(`Node.js ${process.version} (${process.execPath})`);

// Three suites, one command (`vitest run`):
//   unit         pure code and in-process servers; specs sit beside the code or under test/unit
//   integration  the built fetcher against the AWS API emulator (moto in server mode)
//   e2e          chart, webhook and fetcher against a real kube-apiserver + etcd and the emulator
//   node         the images built from the Dockerfile, run by a real kubelet + containerd + runc
//                node joined to such a control plane
// The real parts are installed by test/setup/install.sh and started by each suite's global set-up.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['{bin,webhook,fetcher,certs,store}/**/*.spec.ts', 'test/unit/**/*.spec.ts'],
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/integration/global-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          globalSetup: ['test/e2e/global-setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          // One control plane is shared by all e2e files; run them one after another.
          pool: 'forks',
          poolOptions: { forks: { singleFork: true } },
        },
      },
      {
        test: {
          name: 'node',
          include: ['test/node/**/*.test.ts'],
          globalSetup: ['test/node/global-setup.ts'],
          testTimeout: 180_000,
          hookTimeout: 180_000,
          // One node; its files run one after another (each serves AWS on the node's port 443).
          pool: 'forks',
          poolOptions: { forks: { singleFork: true } },
        },
      },
    ],
  },
});
