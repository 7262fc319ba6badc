import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
    testTimeout: 120_000,
    hookTimeout: 180_000,
    // Two cores: browser tests and heavy engine tests must not fight each other.
    fileParallelism: true,
    maxWorkers: 2,
  },
});
