/**
 * The live page: watch a topic pattern or a tailable file, publish a test
 * event, and see the server's active streams. It talks Connect through
 * connect-web to the server that served it, and reads streams through
 * runnel's resumable client, so leaving a watch (Stop, switching topic,
 * closing the tab) cancels the server stream at once and a restarted server
 * is picked up again by itself.
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { subscribe, tail, type RetryInfo } from "../src/client/index.js";
import { AdminService } from "../gen/runnel/v1/admin_pb.js";
import { EventService, GapReason, ClosingReason } from "../gen/runnel/v1/event_pb.js";
import { FileEventKind, TailService } from "../gen/runnel/v1/tail_pb.js";

/** Rows kept in the event list: the page's memory stays bounded however long it runs. */
const MAX_ROWS = 500;
const STREAMS_REFRESH_MS = 1_000;

const transport = createConnectTransport({ baseUrl: location.origin });
const events = createClient(EventService, transport);
const admin = createClient(AdminService, transport);
const files = createClient(TailService, transport);
const decoder = new TextDecoder();

function byId<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`page is missing #${id}`);
  return el as T;
}

const ui = {
  status: byId<HTMLSpanElement>("status"),
  form: byId<HTMLFormElement>("watch-form"),
  pattern: byId<HTMLInputElement>("pattern"),
  files: byId<HTMLSelectElement>("files"),
  sourceFile: byId<HTMLInputElement>("source-file"),
  last: byId<HTMLInputElement>("last"),
  stop: byId<HTMLButtonElement>("stop"),
  watching: byId<HTMLParagraphElement>("watching"),
  events: byId<HTMLOListElement>("events"),
  publishForm: byId<HTMLFormElement>("publish-form"),
  publishTopic: byId<HTMLInputElement>("publish-topic"),
  publishData: byId<HTMLTextAreaElement>("publish-data"),
  publishResult: byId<HTMLOutputElement>("publish-result"),
  streams: byId<HTMLTableSectionElement>("streams"),
  streamCount: byId<HTMLSpanElement>("stream-count"),
};

function setStatus(kind: "idle" | "live" | "retrying" | "failed", text: string): void {
  ui.status.className = `status ${kind}`;
  ui.status.textContent = text;
}

const time = (t: Timestamp | undefined): string => (t === undefined ? "" : timestampDate(t).toLocaleTimeString());

/** Append one row (text only: nothing from the wire is ever parsed as HTML). */
function row(kind: string, meta: string, text: string, data: Record<string, string> = {}): void {
  const li = document.createElement("li");
  li.className = kind;
  li.dataset.kind = kind;
  for (const [k, v] of Object.entries(data)) li.dataset[k] = v;
  const m = document.createElement("span");
  m.className = "meta";
  m.textContent = meta;
  li.append(m, text);
  ui.events.append(li);
  while (ui.events.childElementCount > MAX_ROWS) ui.events.firstElementChild?.remove();
  li.scrollIntoView({ block: "nearest" });
}

function onRetry(r: RetryInfo): void {
  setStatus("retrying", `reconnecting (attempt ${r.attempt})`);
  row("notice", "--", `${Code[r.error.code]}: ${r.error.rawMessage}; retrying in ${(r.delayMs / 1000).toFixed(1)} s`);
}

/** The watch in progress; aborting it cancels its server stream. */
let current: AbortController | undefined;

function stopWatching(): void {
  current?.abort();
  current = undefined;
  ui.stop.disabled = true;
}

async function watchTopic(topic: string, last: number, signal: AbortSignal): Promise<void> {
  const start = last > 0 ? { case: "last" as const, value: last } : undefined;
  for await (const m of subscribe(transport, { topic, start }, { signal, onRetry })) {
    const k = m.kind;
    switch (k.case) {
      case "subscribed":
        setStatus("live", "live");
        break;
      case "event":
        row("event", `${time(k.value.time)} ${k.value.topic} #${k.value.seq}`, decoder.decode(k.value.data), { topic: k.value.topic, seq: String(k.value.seq) });
        break;
      case "gap":
        row("gap", "-- gap", `${k.value.topic} #${k.value.fromSeq}..#${k.value.toSeq} (${GapReason[k.value.reason]?.toLowerCase()})`);
        break;
      case "closing":
        row("notice", "--", `server closing the stream (${ClosingReason[k.value.reason]?.toLowerCase()}: ${k.value.message})`);
        break;
    }
  }
}

async function watchFile(path: string, lines: number, signal: AbortSignal): Promise<void> {
  for await (const m of tail(transport, { path, lines }, { signal, onRetry })) {
    const k = m.kind;
    switch (k.case) {
      case "started":
        setStatus("live", k.value.exists ? "live" : "waiting for the file");
        break;
      case "line":
        row("line", `${time(k.value.time)}`, k.value.text, { offset: String(k.value.offset) });
        break;
      case "fileEvent":
        row("notice", "--", `${FileEventKind[k.value.kind]?.toLowerCase()}: ${k.value.message}`);
        break;
      case "closing":
        row("notice", "--", `server closing the stream (${ClosingReason[k.value.reason]?.toLowerCase()}: ${k.value.message})`);
        break;
    }
  }
}

async function startWatching(): Promise<void> {
  stopWatching();
  const controller = new AbortController();
  current = controller;
  ui.events.replaceChildren();
  ui.stop.disabled = false;
  const last = Math.max(0, Math.min(1000, Number(ui.last.value) || 0));
  const byFile = ui.sourceFile.checked;
  const target = byFile ? ui.files.value : ui.pattern.value.trim();
  ui.watching.textContent = byFile ? `Following file ${target}` : `Watching ${target}`;
  setStatus("retrying", "connecting");
  try {
    if (byFile) await watchFile(target, last, controller.signal);
    else await watchTopic(target, last, controller.signal);
    if (current === controller) setStatus("idle", "ended");
  } catch (e) {
    if (controller.signal.aborted) return; // stopped or replaced by a newer watch
    const err = ConnectError.from(e);
    setStatus("failed", `${Code[err.code]}`);
    row("notice", "--", `${Code[err.code]}: ${err.rawMessage}`);
  } finally {
    if (current === controller) ui.stop.disabled = true;
  }
}

async function publish(): Promise<void> {
  try {
    const r = await events.publish({ topic: ui.publishTopic.value.trim(), data: new TextEncoder().encode(ui.publishData.value) });
    ui.publishResult.textContent = `published #${r.seq}`;
  } catch (e) {
    const err = ConnectError.from(e);
    ui.publishResult.textContent = `${Code[err.code]}: ${err.rawMessage}`;
  }
}

async function refreshStreams(): Promise<void> {
  if (document.hidden) return;
  try {
    const { streams } = await admin.listStreams({});
    ui.streamCount.textContent = String(streams.length);
    ui.streams.replaceChildren(
      ...streams.map((s) => {
        const tr = document.createElement("tr");
        for (const cell of [s.id, s.rpc.split("/").pop() ?? s.rpc, s.protocol, s.topic || s.path, String(s.eventsSent), String(s.queued)]) {
          const td = document.createElement("td");
          td.textContent = cell;
          tr.append(td);
        }
        return tr;
      }),
    );
  } catch {
    ui.streamCount.textContent = "?";
  }
}

async function loadFiles(): Promise<void> {
  const none = (text: string): void => {
    ui.files.replaceChildren(new Option(text, ""));
    ui.files.disabled = true;
    ui.sourceFile.disabled = true;
  };
  try {
    const { files: list } = await files.listFiles({});
    if (list.length === 0) return none("(no tailable files: runnel serve --tail-dir DIR)");
    ui.files.replaceChildren(...list.map((f) => new Option(f.path, f.path)));
    ui.files.disabled = false;
    ui.sourceFile.disabled = false;
  } catch (e) {
    const err = ConnectError.from(e);
    none(err.code === Code.Unimplemented ? "(file tailing is not available on this server)" : `(files: ${Code[err.code]})`);
  }
}

ui.form.addEventListener("submit", (e) => {
  e.preventDefault();
  void startWatching();
});
ui.stop.addEventListener("click", () => {
  stopWatching();
  setStatus("idle", "stopped");
});
ui.publishForm.addEventListener("submit", (e) => {
  e.preventDefault();
  void publish();
});
ui.files.addEventListener("change", () => (ui.sourceFile.checked = true));
ui.pattern.addEventListener("focus", () => ((document.querySelector('input[name="source"][value="topic"]') as HTMLInputElement).checked = true));
// Leaving the page ends the watch from our side too (the browser also drops the connection).
addEventListener("pagehide", stopWatching);

void loadFiles();
void refreshStreams();
setInterval(() => void refreshStreams(), STREAMS_REFRESH_MS);
document.body.dataset.ready = "true";
