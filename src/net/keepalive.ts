/**
 * Server-side HTTP/2 PING keepalive: a session whose PING is not answered in
 * time is destroyed, which ends every stream on it (cause dead_peer). This is
 * how a silent peer (a pulled cable, a stopped process behind a live NAT) is
 * found while no data flows.
 */
import type { Http2Session } from "node:http2";

const dead = new WeakSet<Http2Session>();

/** True when keepalive condemned this session. */
export function isDeadSession(session: Http2Session | undefined): boolean {
  return session !== undefined && dead.has(session);
}

/** Ping `session` every `intervalMs`; destroy it when an answer takes longer than `timeoutMs`. */
export function keepAlive(session: Http2Session, intervalMs: number, timeoutMs: number, onDead: () => void): void {
  if (intervalMs <= 0) return;
  let answerTimer: NodeJS.Timeout | undefined;
  const interval = setInterval(() => {
    if (session.destroyed || session.closed || answerTimer !== undefined) return;
    answerTimer = setTimeout(() => {
      dead.add(session);
      onDead();
      session.destroy();
    }, timeoutMs);
    answerTimer.unref();
    try {
      session.ping((err) => {
        if (err) return; // the session is going away; close handles the rest
        clearTimeout(answerTimer);
        answerTimer = undefined;
      });
    } catch {
      // ping throws when the session is closing or too many pings are in flight
    }
  }, intervalMs);
  interval.unref();
  session.once("close", () => {
    clearInterval(interval);
    clearTimeout(answerTimer);
  });
}
