/** `runnel serve`: run the hub until SIGTERM or SIGINT, then shut down gracefully. */
import { pino } from "pino";
import { parseServeArgs, serveHelp } from "../config.js";
import { createServer } from "../server.js";

/** Run the server; resolves when it has shut down. */
export async function serve(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(serveHelp());
    return 0;
  }
  const config = parseServeArgs(argv);
  // Logs go to stderr: stdout carries only the "listening" line, so scripts can read the URL from it.
  const logger = pino({ level: config.logLevel, base: undefined }, pino.destination({ dest: 2, sync: true }));
  const server = createServer(config, { logger });
  // Signal handlers go in before the "listening" line: a supervisor may signal the instant it reads it.
  const stopped = new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) {
        server.log.warn(`second ${signal}: exiting now`);
        resolve(1);
        return;
      }
      stopping = true;
      server.log.info({ signal, graceMs: config.graceMs }, "shutting down");
      const force = setTimeout(() => resolve(1), config.graceMs + 2_000);
      force.unref();
      server.shutdown().then(
        () => resolve(0),
        (e: unknown) => {
          server.log.error({ err: e }, "shutdown failed");
          resolve(1);
        },
      );
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
  });
  await server.listen();
  console.log(`runnel listening on ${server.url}`);
  return stopped;
}
