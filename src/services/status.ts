/**
 * One mapping from bus errors to Connect status codes, shared by every
 * service, so a bad request is InvalidArgument everywhere and a backend
 * outage is Unavailable everywhere.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { BusError } from "../bus/bus.js";

const CODE_OF: Record<BusError["kind"], Code> = {
  invalid: Code.InvalidArgument,
  unavailable: Code.Unavailable,
  exhausted: Code.ResourceExhausted,
};

/** Convert a BusError into the ConnectError the client sees; other errors pass through. */
export function statusOf(e: unknown): unknown {
  return e instanceof BusError ? new ConnectError(e.message, CODE_OF[e.kind]) : e;
}

/** Throw InvalidArgument when `problem` is defined. */
export function requireValid(problem: string | undefined): void {
  if (problem !== undefined) throw new ConnectError(problem, Code.InvalidArgument);
}
