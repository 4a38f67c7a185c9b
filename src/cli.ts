#!/usr/bin/env node
/** The `runnel` command: serve, publish, subscribe, streams, tail. */
import { ConfigError } from "./config.js";
import { CliError } from "./cli/common.js";
import { hashTokenCommand } from "./cli/hash-token.js";
import { publish } from "./cli/publish.js";
import { serve } from "./cli/serve.js";
import { streams } from "./cli/streams.js";
import { subscribe } from "./cli/subscribe.js";
import { tail } from "./cli/tail.js";

const USAGE = `usage: runnel <command> [options]

commands:
  serve       run the hub (runnel serve --help for options)
  publish     runnel publish TOPIC [DATA | -] [-H key=value]...
  subscribe   runnel subscribe PATTERN [--last N | --from-seq N | --earliest | --after CURSOR] [--json]
  streams     runnel streams [--json] [--close ID]
  tail        runnel tail PATH [-n N] [--no-follow] [--grep RE] [--after CURSOR] [--json] | runnel tail --list
  hash-token  runnel hash-token [TOKEN | -]: the SHA-256 an --auth file stores (no TOKEN: make one)

client commands take --url URL (default $RUNNEL_URL or http://127.0.0.1:8080)
--protocol connect|grpc|grpc-web and --token TOKEN (default $RUNNEL_TOKEN).`;

const COMMANDS: Record<string, (argv: string[]) => Promise<number>> = { serve, publish, subscribe, streams, tail, "hash-token": hashTokenCommand };

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === "help" || command === "--help" || command === "-h") {
    console.log(USAGE);
    return command === undefined ? 2 : 0;
  }
  const run = COMMANDS[command];
  if (run === undefined) throw new CliError(`unknown command "${command}" (commands: ${Object.keys(COMMANDS).join(", ")}; "runnel help" shows usage)`, 2);
  return run(rest);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    const known = e instanceof CliError || e instanceof ConfigError || (e instanceof Error && "code" in e && String(e.code).startsWith("ERR_PARSE_ARGS"));
    // One line, whatever the error: node's parseArgs messages span several lines.
    const message = (e instanceof Error ? e.message : String(e)).trim().replace(/\s*\n\s*/g, " ");
    console.error(`runnel: ${message}`);
    if (!known && e instanceof Error && process.env.RUNNEL_DEBUG) console.error(e.stack);
    process.exit(e instanceof CliError ? e.exitCode : known ? 2 : 1);
  },
);
