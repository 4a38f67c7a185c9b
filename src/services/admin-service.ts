/**
 * runnel.v1.AdminService: a window onto the ledger. ListStreams reads it;
 * CloseStream ends one stream with Closing(ADMIN), or answers NotFound when
 * no live stream has that id (already ended, or never existed), so a script
 * that closes a stream can tell "done" from "nothing there".
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { Ledger } from "../stream/ledger.js";
import {
  AdminService,
  CloseStreamResponseSchema,
  ListStreamsResponseSchema,
  StreamInfoSchema,
} from "../../gen/runnel/v1/admin_pb.js";

/** Build the AdminService implementation over a ledger. */
export function createAdminService(ledger: Ledger): ServiceImpl<typeof AdminService> {
  return {
    listStreams() {
      const streams = ledger
        .list()
        .sort((a, b) => a.startedMs - b.startedMs)
        .map((e) =>
          create(StreamInfoSchema, {
            id: e.id,
            rpc: e.rpc,
            protocol: e.protocol,
            peer: e.peer,
            topic: e.topic,
            path: e.path,
            started: timestampFromMs(e.startedMs),
            eventsSent: BigInt(e.eventsSent),
            queued: e.queued,
            queuedBytes: BigInt(e.queuedBytes),
            lastWrite: e.lastWriteMs > 0 ? timestampFromMs(e.lastWriteMs) : undefined,
          }),
        );
      return create(ListStreamsResponseSchema, { streams });
    },
    closeStream(req) {
      const entry = ledger.get(req.id);
      if (entry === undefined) throw new ConnectError(`no live stream with id "${req.id}"`, Code.NotFound);
      entry.close("admin", "closed by an operator");
      return create(CloseStreamResponseSchema, { closed: true });
    },
  };
}
