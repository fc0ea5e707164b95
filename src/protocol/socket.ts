/**
 * The line protocol on a unix socket: how `rep run` serves the clients it started. The socket lives
 * in a private temporary folder (mode 0700); its path goes to the command as `REP_CONTROL`.
 *
 * @module
 */
import { join } from "node:path";
import { type Host, readLines, serveSession } from "./session.ts";

/** The environment variable naming the control socket. */
export const CONTROL_ENV = "REP_CONTROL";

/** A listening control socket. */
export interface ControlServer {
  /** The socket path (for `REP_CONTROL`). */
  readonly path: string;
  /** Stop listening, close every connection and remove the socket. */
  close(): Promise<void>;
}

const DIR_PREFIX = "rep-control-";
/** A control folder younger than this is never swept (it may be about to listen). */
const SWEEP_AGE_MS = 60_000;

/**
 * Remove the control folders that a `rep run` killed with -9 left behind: folders of ours under
 * `tmp` older than a minute whose socket no longer answers. Errors are ignored (a sweep is tidying,
 * never a reason to fail a run).
 */
export async function sweepStaleControlDirs(tmp = tmpDir(), now = Date.now()): Promise<number> {
  let removed = 0;
  try {
    for await (const e of Deno.readDir(tmp)) {
      if (!e.isDirectory || !e.name.startsWith(DIR_PREFIX)) continue;
      const dir = join(tmp, e.name);
      if (await isStale(dir, now)) {
        await Deno.remove(dir, { recursive: true });
        removed++;
      }
    }
  } catch {
    // unreadable tmp, or a folder removed meanwhile
  }
  return removed;
}

async function isStale(dir: string, now: number): Promise<boolean> {
  const st = await Deno.stat(dir);
  if (st.mtime && now - st.mtime.getTime() < SWEEP_AGE_MS) return false;
  try {
    const conn = await Deno.connect({ transport: "unix", path: join(dir, "control.sock") });
    conn.close();
    return false; // a live rep run
  } catch {
    return true; // refused or missing: nobody serves it
  }
}

function tmpDir(): string {
  return Deno.env.get("TMPDIR") || "/tmp";
}

/** Listen on a new unix socket and serve each connection as a session of `host`. */
export async function serveControl(host: Host): Promise<ControlServer> {
  const sweeping = sweepStaleControlDirs(); // awaited at close, so no test sees it pending
  const dir = await Deno.makeTempDir({ prefix: DIR_PREFIX });
  const path = join(dir, "control.sock");
  const listener = Deno.listen({ transport: "unix", path });
  const conns = new Set<Deno.Conn>();
  const sessions = new Set<Promise<unknown>>();
  const enc = new TextEncoder();
  const accept = (async () => {
    try {
      for await (const conn of listener) {
        conns.add(conn);
        let open = true;
        let write: Promise<void> = Promise.resolve();
        const send = (line: string) => {
          if (!open) return;
          const bytes = enc.encode(line);
          // Replies are small; write them whole, in order.
          write = write.then(async () => {
            let o = 0;
            while (o < bytes.length) o += await conn.write(bytes.subarray(o));
          }).catch(() => {
            open = false;
          });
        };
        const session = serveSession(readLines(conn.readable), send, host)
          .catch(() => {})
          .then(() => write)
          .finally(() => {
            open = false;
            conns.delete(conn);
            try {
              conn.close();
            } catch {
              // already closed
            }
            sessions.delete(session);
          });
        sessions.add(session);
      }
    } catch {
      // listener closed
    }
  })();
  return {
    path,
    async close() {
      try {
        listener.close();
      } catch {
        // already closed
      }
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // already closed
        }
      }
      await accept;
      await Promise.allSettled([...sessions, sweeping]);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}
