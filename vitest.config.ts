import { defineConfig } from 'vitest/config';
import { SummaryReporter } from './test/support/summary-reporter.js';

// Two projects: `unit` runs pure code only; `api` runs against the real kube-apiserver that
// test/global-setup.ts starts once per run (files named *.api.test.ts), and `net` needs
// network namespaces (files named *.net.test.ts).
export default defineConfig({
  test: {
    reporters: ['default', new SummaryReporter()],
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/**/*.test.ts'],
          exclude: ['test/**/*.api.test.ts', 'test/**/*.net.test.ts', 'test/**/*.moto.test.ts'],
        },
      },
      // Against moto (the AWS emulator hack/moto.mjs installs); each file starts its own server.
      { test: { name: 'moto', include: ['test/**/*.moto.test.ts'], testTimeout: 60_000, hookTimeout: 60_000 } },
      {
        test: {
          name: 'api',
          include: ['test/**/*.api.test.ts'],
          globalSetup: ['test/global-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          // Files that run a controller watch the whole cluster: run files one at a time.
          fileParallelism: false,
        },
      },
      {
        test: {
          name: 'net',
          include: ['test/**/*.net.test.ts'],
          globalSetup: ['test/global-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
