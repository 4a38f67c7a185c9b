/**
 * The core's end-cause matrix, every row over every transport, rerun with the
 * servers on the Redis bus (a real redis-server on a free port): the same
 * file, imported after pointing startServer at Redis, so the two runs cannot
 * drift apart. Row 8 brings its own failing bus and runs as before.
 */
import { afterAll, describe, expect, it } from "vitest";
import { isRedisBus } from "../../src/bus/redis-config.js";
import { redisInstalled, startRedis } from "../harness/redis.js";
import { setServerDefaults, startServer } from "../harness/server.js";

if (redisInstalled) {
  const redis = await startRedis();
  setServerDefaults({ bus: redis.url });
  afterAll(() => redis.stop());
  await import("./end-cause-matrix.test.js");
  describe("the rerun really runs on Redis", () => {
    it("startServer() now builds a Redis bus", async () => {
      const server = await startServer();
      try {
        expect(isRedisBus(server.bus)).toBe(true);
      } finally {
        await server.shutdown(500);
      }
    });
  });
} else {
  describe.skip("end-cause matrix on the Redis bus (redis-server not installed)", () => {
    it("needs redis-server", () => undefined);
  });
}
