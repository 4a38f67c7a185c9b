import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    exclude: ["test/stress/**", "node_modules/**"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Lifecycle tests count process-wide fds and sockets; run files one at a time.
    fileParallelism: false,
    pool: "forks",
  },
});
