/**
 * The `runnel` command as a user runs it: the built CLI (dist/src/cli.js) in
 * child processes against a server the test started. Output is what a user
 * or a script reads; Ctrl-C cancels the call at once and exits 130; every
 * user mistake is one line on stderr starting with "runnel:", never a stack.
 */
import { Code, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { spawn } from "node:child_process";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClosingReason, EventService } from "../../gen/runnel/v1/event_pb.js";
import type { RunnelServer } from "../../src/server.js";
import { CLI, ensureBuilt } from "../harness/built.js";
import { startServer, waitFor } from "../harness/server.js";
import { Subscriber } from "../harness/subscriber.js";

const SUBSCRIBE = "runnel.v1.EventService/Subscribe";
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

/** A running `runnel` child process. */
class Cli {
  stdout = "";
  stderr = "";
  code: number | null | undefined;
  signal: NodeJS.Signals | null = null;
  readonly exited: Promise<number | null>;
  private readonly child;

  constructor(args: string[], stdin?: string) {
    const env = { ...process.env };
    delete env.RUNNEL_URL;
    delete env.RUNNEL_DEBUG;
    delete env.RUNNEL_PORT;
    this.child = spawn(process.execPath, [CLI, ...args], { env, stdio: ["pipe", "pipe", "pipe"] });
    this.child.stdout.setEncoding("utf8").on("data", (d: string) => (this.stdout += d));
    this.child.stderr.setEncoding("utf8").on("data", (d: string) => (this.stderr += d));
    if (stdin !== undefined) this.child.stdin.end(stdin);
    else this.child.stdin.end();
    this.exited = new Promise((resolve) =>
      this.child.once("close", (code, signal) => {
        this.code = code;
        this.signal = signal;
        resolve(code);
      }),
    );
  }

  get lines(): string[] {
    return this.stdout.split("\n").filter((l) => l !== "");
  }

  kill(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  /** Close our end of the child's stdout pipe, as `| head -1` does once it has its line. */
  closeStdout(): void {
    this.child.stdout.destroy();
  }

  /** Wait for a stdout line matching `re`. */
  async line(re: RegExp, timeoutMs = 10_000): Promise<string> {
    await waitFor(() => this.lines.some((l) => re.test(l)) || this.code !== undefined, timeoutMs, `stdout line ${re}`);
    const l = this.lines.find((x) => re.test(x));
    if (l === undefined) throw new Error(`exited ${this.code} without ${re}; stdout=${this.stdout} stderr=${this.stderr}`);
    return l;
  }
}

/** Run to completion. */
async function run(args: string[], stdin?: string): Promise<Cli> {
  const c = new Cli(args, stdin);
  await c.exited;
  return c;
}

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

describe("runnel CLI", () => {
  let server: RunnelServer;
  let url: string;
  let client: Client<typeof EventService>;
  beforeAll(async () => {
    ensureBuilt();
    server = await startServer({ heartbeatMs: 60_000 });
    url = server.url;
    client = createClient(EventService, createConnectTransport({ baseUrl: url, httpVersion: "2" }));
  }, 120_000);
  afterAll(async () => {
    await server.shutdown(1_000);
  });

  it("publish prints the seq and cursor (text and --json, data from an argument or stdin)", async () => {
    const first = await run(["publish", "cli.pub", "hello", "--url", url]);
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    const m = /^published cli\.pub #1 cursor=(\S+)\n$/.exec(first.stdout);
    expect(m, first.stdout).not.toBeNull();

    const second = await run(["publish", "cli.pub", "-", "--json", "-H", "k=v", "--url", url], "from stdin");
    expect(second.code).toBe(0);
    expect(second.lines).toHaveLength(1);
    const json = JSON.parse(second.lines[0]!) as { topic: string; seq: string; cursor: string };
    expect(json.topic).toBe("cli.pub");
    expect(json.seq).toBe("2");

    const sub = Subscriber.open(createConnectTransport({ baseUrl: url, httpVersion: "2" }), { topic: "cli.pub", start: { case: "earliest", value: true } });
    await sub.eventCount(2);
    await sub.cancel();
    expect(sub.texts).toEqual(["hello", "from stdin"]);
    expect(sub.events.map((e) => e.cursor)).toEqual([m![1], json.cursor]);
    expect(sub.events[1]!.headers).toEqual({ k: "v" });
  });

  it("subscribe --json prints one JSON object per line; Ctrl-C exits 130 and the server's stream ends at once", async () => {
    const canceledBefore = server.ledger.endedCount(SUBSCRIBE, "canceled");
    const cli = new Cli(["subscribe", "cli.sub.*", "--json", "--url", url]);
    const subscribedLine = await cli.line(/"type":"subscribed"/);
    const subscribed = JSON.parse(subscribedLine) as { type: string; id: string; heartbeatMs: number; headCursor: string };
    expect(subscribed.type).toBe("subscribed");
    expect(subscribed.heartbeatMs).toBe(60_000);
    expect(server.ledger.get(subscribed.id)).toBeDefined();

    const r1 = await client.publish({ topic: "cli.sub.a", data: enc("one") });
    const r2 = await client.publish({ topic: "cli.sub.b", data: enc("two"), headers: { h: "1" } });
    await cli.line(/"data":"two"/);
    const lines = cli.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]).toEqual({ type: "subscribed", id: subscribed.id, heartbeatMs: 60_000, headCursor: subscribed.headCursor });
    expect(lines.slice(1).map(({ time, ...rest }) => (expect(typeof time).toBe("string"), rest))).toEqual([
      { type: "event", topic: "cli.sub.a", seq: "1", cursor: r1.cursor, headers: {}, data: "one" },
      { type: "event", topic: "cli.sub.b", seq: "1", cursor: r2.cursor, headers: { h: "1" }, data: "two" },
    ]);

    cli.kill("SIGINT");
    expect(await cli.exited).toBe(130);
    await waitFor(() => server.ledger.size === 0, 2_000, "server stream ended after Ctrl-C");
    expect(server.bus.stats().subscriptionsActive).toBe(0);
    expect(server.ledger.endedCount(SUBSCRIBE, "canceled")).toBe(canceledBefore + 1);
    expect(cli.stderr).toBe("");
  });

  it("subscribe | head -1: when the reader goes away, the call is cancelled and the command exits 0 without a stack", async () => {
    const cli = new Cli(["subscribe", "cli.pipe", "--url", url]);
    await waitFor(() => server.ledger.size === 1, 10_000, "subscription");
    await client.publish({ topic: "cli.pipe", data: enc("first") });
    await cli.line(/ cli\.pipe #1 first$/);
    cli.closeStdout();
    // Node ignores SIGPIPE: the next line written is what fails (EPIPE), as with tail -f.
    await client.publish({ topic: "cli.pipe", data: enc("second") });
    await cli.exited;
    expect({ code: cli.code, stderr: cli.stderr }).toEqual({ code: 0, stderr: "" });
    await waitFor(() => server.ledger.size === 0, 2_000, "server stream ended");
  });

  it("subscribe (text) prints events; when the server closes the stream it says so and resumes by itself", async () => {
    const cli = new Cli(["subscribe", "cli.text", "--url", url]);
    await waitFor(() => server.ledger.size === 1, 10_000, "subscription");
    const r = await client.publish({ topic: "cli.text", data: enc("plain") });
    await cli.line(/ cli\.text #1 plain$/);
    const first = server.ledger.list()[0]!.id;
    server.ledger.list()[0]!.close("admin", "closed by an operator");
    await cli.line(/^-- server closing the stream \(admin: closed by an operator\); resuming$/);
    await waitFor(() => server.ledger.size === 1 && server.ledger.list()[0]!.id !== first, 10_000, "resubscribed");
    expect(cli.stderr).toMatch(new RegExp(`^runnel: Unavailable: closed by an operator; resuming after ${r.cursor} in \\d+\\.\\d s \\(attempt 1\\)\n$`));
    await client.publish({ topic: "cli.text", data: enc("again") });
    await cli.line(/ cli\.text #2 again$/);
    cli.kill("SIGINT");
    expect(await cli.exited).toBe(130);
    expect(cli.lines.filter((l) => / cli\.text #/.test(l))).toHaveLength(2);
    await waitFor(() => server.ledger.size === 0, 2_000, "server stream ended");
  });

  it("subscribe --earliest closed before any event resumes from its start: the first event still arrives", async () => {
    const cli = new Cli(["subscribe", "cli.nothing.yet", "--earliest", "--url", url]);
    await waitFor(() => server.ledger.size === 1, 10_000, "subscription");
    const first = server.ledger.list()[0]!.id;
    server.ledger.list()[0]!.close("admin", "closed by an operator");
    await cli.line(/^-- server closing the stream \(admin: closed by an operator\); resuming$/);
    await waitFor(() => server.ledger.size === 1 && server.ledger.list()[0]!.id !== first, 10_000, "resubscribed");
    const published = await client.publish({ topic: "cli.nothing.yet", data: enc("first") });
    expect(published.seq).toBe(1n);
    await cli.line(/ cli\.nothing\.yet #1 first$/);
    cli.kill("SIGINT");
    expect(await cli.exited).toBe(130);
    await waitFor(() => server.ledger.size === 0, 2_000, "server stream ended");
  });

  it("streams lists a live stream (table and --json) and --close ends it", async () => {
    const sub = Subscriber.open(createConnectTransport({ baseUrl: url, httpVersion: "2" }), { topic: "cli.streams" });
    const { subscriptionId } = await sub.ready();

    const table = await run(["streams", "--url", url]);
    expect(table.code).toBe(0);
    expect(table.lines[0]).toMatch(/^ID\s+RPC\s+PROTOCOL\s+PEER\s+TOPIC\/PATH\s+STARTED\s+SENT\s+QUEUED\s+LAST WRITE$/);
    const row = table.lines.find((l) => l.startsWith(subscriptionId));
    expect(row).toMatch(new RegExp(`^${subscriptionId}\\s+Subscribe\\s+connect h2\\s+127\\.0\\.0\\.1:\\d+\\s+cli\\.streams\\s+\\S+Z\\s+0\\s+0\\s+\\S+`));

    const json = await run(["streams", "--json", "--url", url]);
    expect(json.code).toBe(0);
    const rows = json.lines.map((l) => JSON.parse(l) as Record<string, string>);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ id: subscriptionId, rpc: "Subscribe", protocol: "connect h2", target: "cli.streams", sent: "0", queued: "0" });

    const close = await run(["streams", "--close", subscriptionId, "--url", url]);
    expect(close.code).toBe(0);
    expect(close.stdout).toBe(`closed ${subscriptionId}\n`);
    await sub.finished();
    expect(sub.closing?.reason).toBe(ClosingReason.ADMIN);
    expect(sub.error?.code).toBe(Code.Unavailable);

    const empty = await run(["streams", "--url", url]);
    expect(empty.lines.at(-1)).toBe("(no live streams)");
    await waitFor(() => server.ledger.size === 0, 5_000, "ledger empty");
  });

  it("user mistakes: exactly one line on stderr starting with runnel:, no stack, non-zero exit", async () => {
    const down = `http://127.0.0.1:${await closedPort()}`;
    const cases: [args: string[], message: RegExp][] = [
      [["bogus"], /^runnel: unknown command "bogus"/],
      [["publish", "t", "x", "--bogus", "--url", url], /^runnel: Unknown option '--bogus'/],
      [["subscribe", "t", "--last", "abc", "--url", url], /^runnel: --last must be a whole number, got "abc"$/],
      [["subscribe", "t", "--last", "-1", "--url", url], /^runnel: Option '--last' argument is ambiguous\./],
      [["subscribe", "t", "--last", "99999999999", "--url", url], /^runnel: --last must be at most 4294967295, got 99999999999$/],
      [["subscribe", "t", "--from-seq", "0", "--url", url], /^runnel: --from-seq counts from 1$/],
      [["subscribe", "t", "--heartbeat-ms", "soon", "--url", url], /^runnel: --heartbeat-ms must be a whole number, got "soon"$/],
      [["subscribe", "t", "--last", "1", "--earliest", "--url", url], /^runnel: choose one of --last, --from-seq, --earliest, --after$/],
      [["subscribe", "--url", url], /^runnel: usage: runnel subscribe PATTERN/],
      [["subscribe", "a.>.b", "--url", url], /^runnel: InvalidArgument: pattern "a\.>\.b": ">" may only be the last token$/],
      [["subscribe", "a.b", "--after", "garbage!", "--url", url], /^runnel: InvalidArgument: cursor is not a runnel cursor/],
      [["publish", "a.*", "x", "--url", url], /^runnel: InvalidArgument: topic "a\.\*" contains wildcard/],
      [["publish", "t", "x", "-H", "novalue", "--url", url], /^runnel: --header must look like key=value, got "novalue"$/],
      [["publish", "t", "x", "--url", "ftp://example"], /^runnel: --url must start with http:\/\/ or https:\/\//],
      [["publish", "t", "x", "--protocol", "smoke", "--url", url], /^runnel: --protocol must be connect, grpc or grpc-web, got "smoke"$/],
      [["publish", "t", "x", "--url", down], new RegExp(`^runnel: cannot reach runnel at ${down}: .*ECONNREFUSED`)],
      [["subscribe", "t", "--url", down], new RegExp(`^runnel: cannot reach runnel at ${down}: .*ECONNREFUSED`)],
      [["streams", "--url", down], new RegExp(`^runnel: cannot reach runnel at ${down}: .*ECONNREFUSED`)],
      [["streams", "--close", "nope", "--url", url], /^runnel: NotFound: no live stream with id "nope"$/],
      [["serve", "--port", "abc"], /^runnel: --port must be a whole number >= 0, got "abc"$/],
      [["serve", "--port", "70000"], /^runnel: --port must be at most 65535, got 70000$/],
      [["serve", "--heartbeat-min-ms", "500", "--heartbeat-max-ms", "100"], /^runnel: --heartbeat-min-ms \(500\) is above --heartbeat-max-ms \(100\)$/],
      [["serve", "--bus", "kafka://x"], /^runnel: --bus must be "memory" or a redis:\/\/ URL/],
      [["serve", "--port", "0", "--bus", "redis://127.0.0.1:1/abc"], /^runnel: --bus redis:\/\/127\.0\.0\.1:1\/abc: the path must be a database number, like \/0$/],
      [["serve", "--bogus"], /^runnel: Unknown option '--bogus'/],
      [["serve", "--port", String(server.port)], /^runnel: listen EADDRINUSE/],
    ];
    const results = await Promise.all(cases.map(([args]) => run(args)));
    for (const [i, [args, message]] of cases.entries()) {
      const r = results[i]!;
      const what = `runnel ${args.join(" ")}`;
      expect({ what, stdout: r.stdout }).toEqual({ what, stdout: "" });
      expect({ what, lines: r.stderr.split("\n").filter(Boolean).length, endsWithNewline: r.stderr.endsWith("\n") }).toEqual({ what, lines: 1, endsWithNewline: true });
      expect(r.stderr.trimEnd(), what).toMatch(message);
      expect(r.stderr, what).not.toMatch(/\n\s+at /);
      expect({ what, nonZero: r.code !== 0 && r.code !== null }).toEqual({ what, nonZero: true });
    }
    await waitFor(() => server.ledger.size === 0, 5_000, "ledger empty");
  }, 180_000); // 27 CLI processes at once: under a shared 2-core machine's load (average 20+) this took over 60 s; a bound against hangs only

  it("serve --port 0 prints exactly one line, serves, and exits 0 on SIGTERM (closing live streams)", async () => {
    const serve = new Cli(["serve", "--port", "0"]);
    const line = await serve.line(/^runnel listening on /);
    const m = /^runnel listening on (http:\/\/127\.0\.0\.1:(\d+))$/.exec(line);
    expect(m, line).not.toBeNull();
    const childUrl = m![1]!;
    expect(Number(m![2])).toBeGreaterThan(0);

    const transport = createConnectTransport({ baseUrl: childUrl, httpVersion: "2" });
    const sub = Subscriber.open(transport, { topic: "cli.serve" });
    await sub.ready();
    await createClient(EventService, transport).publish({ topic: "cli.serve", data: enc("x") });
    await sub.eventCount(1);

    serve.kill("SIGTERM");
    await serve.exited;
    expect({ code: serve.code, signal: serve.signal }, serve.stderr).toEqual({ code: 0, signal: null });
    await sub.finished();
    expect(sub.closing?.reason).toBe(ClosingReason.SHUTDOWN);
    expect(sub.closing?.resumeCursor).toBe(sub.events[0]!.cursor);
    expect(sub.error?.code).toBe(Code.Unavailable);
    expect(serve.stdout).toBe(`${line}\n`);
    expect(serve.stderr).not.toMatch(/\n\s+at /);
  });

  it("serve exits 0 on Ctrl-C too", async () => {
    const serve = new Cli(["serve", "--port", "0", "--log-level", "silent"]);
    const line = await serve.line(/^runnel listening on /);
    serve.kill("SIGINT");
    await serve.exited;
    expect({ code: serve.code, signal: serve.signal, stdout: serve.stdout, stderr: serve.stderr }).toEqual({ code: 0, signal: null, stdout: `${line}\n`, stderr: "" });
  });
});
