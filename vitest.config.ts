import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  // What imports the package by its name (the soak the benchmark shares) gets the sources, as in the type check.
  resolve: { alias: { 'aiot-sim': fileURLToPath(new URL('./src/index.ts', import.meta.url)) } },
  test: {
    include: ['tests/**/*.test.ts'],
    // Integration tests open real sockets on port 0; two workers suit the 2-core machines.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 30_000,
    reporters: ['default'],
    setupFiles: ['tests/setup/no-unhandled.ts'],
  },
});
