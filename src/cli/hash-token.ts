/**
 * `runnel hash-token [TOKEN | -]`: print the SHA-256 an auth file stores for
 * a bearer token. Without an argument it makes a new random token and prints
 * both (the token once, to hand to its user; the hash, for the auth file).
 */
import { randomBytes } from "node:crypto";
import { hashToken } from "../auth/auth-file.js";
import { CliError } from "./common.js";

/** Hash (or make and hash) a token; returns the exit code. */
export async function hashTokenCommand(argv: string[]): Promise<number> {
  if (argv.length > 1) throw new CliError("usage: runnel hash-token [TOKEN | -]", 2);
  let token = argv[0];
  if (token === "-") {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    token = Buffer.concat(chunks).toString("utf8").trim();
  }
  if (token === undefined) {
    token = randomBytes(32).toString("base64url");
    console.log(`token  ${token}`);
    console.log(`sha256 ${hashToken(token)}`);
    return 0;
  }
  if (token === "" || /\s/.test(token)) throw new CliError("a bearer token must be non-empty and without spaces");
  console.log(hashToken(token));
  return 0;
}
