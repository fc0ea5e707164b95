/**
 * Misbehaving network endpoints for fault tests, on 127.0.0.1 with a random free port:
 * {@link deadEndpoint} accepts connections and never answers (a hung server, a firewall that
 * blackholes, a stopped VM); {@link slowProxy} forwards to a real server but passes what the
 * client sends at a fixed, low rate (a slow uplink).
 *
 * @module
 */

/** A listening endpoint; `close()` drops every connection and stops listening. */
export interface TcpEndpoint {
  /** `http://127.0.0.1:PORT`. */
  endpoint: string;
  /** Connections accepted so far. */
  readonly connections: number;
  close(): Promise<void>;
}

function serve(
  onConn: (conn: Deno.Conn, conns: Set<Deno.Conn>, closed: Promise<void>) => Promise<void>,
): TcpEndpoint {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let closing = () => {};
  const closed = new Promise<void>((r) => closing = r);
  const conns = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  let accepted = 0;
  const loop = (async () => {
    for await (const conn of listener) {
      accepted++;
      conns.add(conn);
      const t = onConn(conn, conns, closed).catch(() => {}).finally(() => {
        conns.delete(conn);
        tasks.delete(t);
      });
      tasks.add(t);
    }
  })().catch(() => {});
  return {
    endpoint: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    get connections() {
      return accepted;
    },
    async close() {
      closing();
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await loop;
      await Promise.all(tasks);
    },
  };
}

/**
 * Accepts connections and never reads or answers, like a hung server process: the kernel takes
 * the first few MB of a request body, then the sender's writes block.
 */
export function deadEndpoint(): TcpEndpoint {
  return serve((_conn, _conns, closed) => closed);
}

/**
 * Forwards to `target` (`http://host:port`); bytes from the client pass at `bytesPerSecond`,
 * answers at full speed.
 */
export function slowProxy(target: string, bytesPerSecond: number): TcpEndpoint {
  const { hostname, port } = new URL(target);
  return serve(async (client, conns) => {
    const server = await Deno.connect({ hostname, port: Number(port) });
    conns.add(server);
    const slice = Math.max(1, Math.floor(bytesPerSecond / 20));
    const up = (async () => {
      const buf = new Uint8Array(slice);
      for (;;) {
        const n = await client.read(buf);
        if (n === null) break;
        await writeAll(server, buf.subarray(0, n));
        await new Promise((r) => setTimeout(r, (n / bytesPerSecond) * 1000));
      }
    })();
    const down = (async () => {
      const buf = new Uint8Array(64 * 1024);
      for (;;) {
        const n = await server.read(buf);
        if (n === null) break;
        await writeAll(client, buf.subarray(0, n));
      }
    })();
    await Promise.race([up, down]).catch(() => {});
    for (const c of [client, server]) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    conns.delete(server);
    await Promise.allSettled([up, down]);
  });
}

async function writeAll(conn: Deno.Conn, b: Uint8Array): Promise<void> {
  let o = 0;
  while (o < b.length) o += await conn.write(b.subarray(o));
}
