/**
 * A client of the line protocol on `rep run`'s control socket (`REP_CONTROL`): how the TypeScript
 * library's `init()` joins the experiment `rep run` records, as the Python package does (see
 * docs/protocol.md). Requests go one at a time; `message` events are shown on stderr.
 *
 * @module
 */
import {
  AmbiguousIdError,
  BusyError,
  ConfigError,
  ConflictError,
  CorruptObjectError,
  FormatVersionError,
  NotFoundError,
  RepError,
  StorageError,
  UsageError,
} from "../errors.ts";
import { CONTROL_ENV } from "./socket.ts";

type Obj = Record<string, unknown>;

const ERRORS: Record<string, new (message: string, hint?: string) => RepError> = {
  UsageError,
  ConfigError,
  NotFoundError,
  CorruptObjectError,
  FormatVersionError,
  StorageError,
  ConflictError,
  BusyError,
  NameTakenError: ConflictError,
};

/** The error a reply carries, as rep's own class where it has one. */
function replyError(e: unknown): Error {
  const o = (typeof e === "object" && e !== null ? e : {}) as Obj;
  const message = typeof o.message === "string" ? o.message : "rep run refused the request";
  const hint = typeof o.hint === "string" ? o.hint : undefined;
  if (o.type === "AmbiguousIdError") {
    const candidates = Array.isArray(o.candidates) ? o.candidates.map(String) : [];
    return new AmbiguousIdError(message, candidates, hint);
  }
  const Kind = ERRORS[String(o.type)];
  return Kind ? new Kind(message, hint) : new RepError(message, hint);
}

/** One session on a control socket. */
export class ControlClient {
  readonly #conn: Deno.UnixConn;
  readonly #lines: AsyncIterator<string>;
  #next = 1;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(conn: Deno.UnixConn) {
    this.#conn = conn;
    this.#lines = lines(conn.readable);
  }

  /** Connect to the socket at `path` (the value of `REP_CONTROL`). */
  static async connect(path: string): Promise<ControlClient> {
    try {
      return new ControlClient(await Deno.connect({ transport: "unix", path }));
    } catch (e) {
      throw new UsageError(
        `Cannot reach the rep run recording this command (${CONTROL_ENV}=${path}): ${
          e instanceof Error ? e.message : e
        }`,
        `Is \`rep run\` still running? Unset ${CONTROL_ENV} and REP_EXPERIMENT_ID to record separately`,
      );
    }
  }

  /** Send one request and wait for its reply (the reply's fields; an error reply throws). */
  request(op: string, fields: Obj = {}): Promise<Obj> {
    const run = this.#queue.then(() => this.#exchange(op, fields));
    this.#queue = run.catch(() => {});
    return run;
  }

  async #exchange(op: string, fields: Obj): Promise<Obj> {
    const id = this.#next++;
    const line = JSON.stringify({ ...fields, id, op }) + "\n";
    await writeAll(this.#conn, new TextEncoder().encode(line));
    for (;;) {
      const { value, done } = await this.#lines.next();
      if (done) {
        throw new RepError(
          `rep run closed its control socket before answering "${op}"`,
          "Look at rep run's output for why it stopped",
        );
      }
      const msg = JSON.parse(value) as Obj;
      if (msg.event === "message" && typeof msg.text === "string") {
        console.error(msg.text.trimEnd());
        continue;
      }
      if (msg.id !== id) continue; // progress events, or a reply nobody waits for
      if (msg.ok !== true) throw replyError(msg.error);
      return msg;
    }
  }

  /** End the session. */
  close(): void {
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}

/** The lines of a byte stream, without their `\n`. */
async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let rest = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    rest += text;
    let nl: number;
    while ((nl = rest.indexOf("\n")) >= 0) {
      yield rest.slice(0, nl);
      rest = rest.slice(nl + 1);
    }
  }
}
