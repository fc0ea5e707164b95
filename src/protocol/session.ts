/**
 * One client of the line protocol: read requests line by line, hand each to a {@link Host}, send
 * its reply. Used by `rep record` (stdin/stdout) and by `rep run`'s control socket; what a request
 * does is the host's business (start a recorder, or commit through the running `rep run`).
 *
 * @module
 */
import type { CheckpointRecord, ExperimentRecord } from "../format/records.ts";
import type { OutboxState } from "../writer/outbox.ts";
import { UsageError } from "../errors.ts";
import {
  type CheckpointRequest,
  encodeLine,
  type Event,
  type InitRequest,
  parseRequest,
  PROTOCOL_VERSION,
  requestId,
  type StopRequest,
  wireError,
} from "./messages.ts";
import { VERSION } from "../version.ts";

/** Text for the user, sent to the client as a `message` event. */
export type Say = (text: string) => void;

/** What `init` answers. */
export interface InitReply {
  experiment: ExperimentRecord;
  /** URL of the repository it is recorded in. */
  repository: string;
  /** The project folder checkpoint paths are relative to. */
  project: string;
  /** True when the client joined an experiment `rep run` is recording. */
  attached: boolean;
  /** The attempt recorded (1 unless the experiment was resumed). */
  attempt?: number;
  /** The checkpoint a resume put back, or null. */
  resumed_from?: CheckpointRecord | null;
  /** The experiment's checkpoints from before this attempt (a resume), oldest first. */
  checkpoints?: CheckpointRecord[];
  /** True when the experiment resumed had already succeeded: nothing is recorded. */
  succeeded?: boolean;
}

/** What `stop` answers. */
export interface StopReply {
  /** Everything is stored in the repository. */
  uploaded: boolean;
  pending: OutboxState | null;
}

/** What requests do: implemented by `rep record` (a recorder) and by `rep run`. */
export interface Host {
  init(req: InitRequest, say: Say): Promise<InitReply>;
  checkpoint(req: CheckpointRequest, say: Say): Promise<CheckpointRecord>;
  stop(req: StopRequest, progress: (state: OutboxState) => void, say: Say): Promise<StopReply>;
  /** Upload progress, or null before `init`. */
  pending(): OutboxState | null;
}

/** Longest request line accepted (a checkpoint of many paths stays far below). */
export const MAX_LINE = 16 * 1024 * 1024;

/** Split a byte stream into lines (without their `\n`); a last line without `\n` counts too. */
export async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const dec = new TextDecoder();
  let buf = "";
  for await (const bytes of stream) {
    buf += dec.decode(bytes, { stream: true });
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      yield buf.slice(0, nl);
      buf = buf.slice(nl + 1);
    }
    if (buf.length > MAX_LINE) {
      throw new UsageError(`Protocol line longer than ${MAX_LINE} bytes`, "See docs/protocol.md");
    }
  }
  buf += dec.decode();
  if (buf.length) yield buf;
}

/** Options of {@link serveSession}. */
export interface SessionOptions {
  /** Return once a `stop` succeeded (`rep record` then exits). @default false */
  endAfterStop?: boolean;
}

/** What ended a session. */
export interface SessionEnd {
  /** A `stop` request succeeded. */
  stopped: boolean;
  /** An `init` request succeeded. */
  started: boolean;
}

/**
 * Serve one client: each line of `lines` is a request; replies and events go to `send` (which
 * must not throw: a client that went away just stops reading). Requests are handled one at a time.
 */
export async function serveSession(
  lines: AsyncIterable<string>,
  send: (line: string) => void,
  host: Host,
  options: SessionOptions = {},
): Promise<SessionEnd> {
  const end: SessionEnd = { stopped: false, started: false };
  const event = (e: Event) => send(encodeLine(e));
  const say: Say = (text) => event({ event: "message", text });
  for await (const line of lines) {
    if (!line.trim()) continue;
    let id: number | null = null;
    try {
      const req = parseRequest(line);
      id = req.id;
      let reply: Record<string, unknown>;
      switch (req.op) {
        case "ping":
          reply = { protocol: PROTOCOL_VERSION, rep_version: VERSION };
          break;
        case "pending":
          reply = { pending: host.pending() };
          break;
        case "init": {
          const r = await host.init(req, say);
          end.started = true;
          reply = { protocol: PROTOCOL_VERSION, rep_version: VERSION, ...r };
          break;
        }
        case "checkpoint":
          reply = { checkpoint: await host.checkpoint(req, say) };
          break;
        case "stop": {
          const r = await host.stop(
            req,
            (s) => event({ event: "progress", items: s.items, bytes: s.bytes, error: s.error }),
            say,
          );
          end.stopped = true;
          reply = { ...r };
          break;
        }
      }
      send(encodeLine({ id, ok: true, ...reply }));
      if (end.stopped && options.endAfterStop) return end;
    } catch (e) {
      send(encodeLine({ id: id ?? requestId(line), ok: false, error: wireError(e) }));
    }
  }
  return end;
}
