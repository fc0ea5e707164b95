/**
 * Moto's S3 server for tests, beside s3rver: a second S3 implementation, run as its own Python
 * process (`tests/servers/moto_s3.py`, moto's WSGI app on 127.0.0.1) and configured the way AWS
 * users configure an S3-compatible service: a named profile in a shared config file, with
 * `endpoint_url`, `region` and `s3 = addressing_style = path`, and its keys in a shared credentials
 * file. `env` holds only `AWS_CONFIG_FILE`, `AWS_SHARED_CREDENTIALS_FILE` and `AWS_PROFILE`: no
 * endpoint variable, no checksum setting (moto takes the SDK's default checksums, streamed
 * `aws-chunked` uploads with trailing checksums included).
 *
 * Differences from s3rver's {@link TestServer}:
 *  - `pause()` stops the process (SIGSTOP): the port still accepts connections but nothing
 *    answers, as with a dead endpoint or a hung server; `restart()` continues it (SIGCONT) with
 *    its data. Moto keeps objects in memory, so a real restart would lose them.
 *  - `requests` fills from moto's access log, which it writes after each response: use
 *    `requestLog()`, which waits until every request answered so far has been logged.
 *  - The server dies with the test process (it stops at the end of its stdin).
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { randomBucket, type TestServer } from "./s3.ts";

export type { TestServer };

const SCRIPT = fileURLToPath(new URL("./moto_s3.py", import.meta.url));
const ACCESS_LOG = /"([A-Z]+) (\S+) HTTP\/[\d.]+" \d{3}/;

/** Options for {@link startMoto}. */
export interface MotoServerOptions {
  /** Port to listen on; a free one chosen by the OS by default. */
  port?: number;
}

/** Start moto's S3 server on 127.0.0.1 (a `python3` child process). */
export async function startMoto(options: MotoServerOptions = {}): Promise<TestServer> {
  const dir = await Deno.makeTempDir({ prefix: "rep-moto-" });
  const child = new Deno.Command("python3", {
    args: [SCRIPT, "--port", String(options.port ?? 0), "--dir", dir],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const requests: string[] = [];
  const markers = new Map<string, () => void>();
  const logTail: string[] = [];
  const logDone = readLines(child.stderr, (line) => {
    const m = ACCESS_LOG.exec(line);
    if (!m) {
      logTail.push(line);
      if (logTail.length > 20) logTail.shift();
      return;
    }
    const marker = /^\/rep-log-marker-([0-9a-f-]+)$/.exec(m[2]!);
    if (marker) markers.get(marker[1]!)?.();
    else requests.push(`${m[1]} ${m[2]}`);
  });
  let env: Record<string, string>;
  try {
    env = JSON.parse(await firstLine(child.stdout)) as Record<string, string>;
  } catch (e) {
    await child.stdin.close().catch(() => {});
    await child.status;
    await logDone;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw new Error(`moto's S3 server did not start: ${logTail.join("\n")}`, { cause: e });
  }
  const config = await Deno.readTextFile(env.AWS_CONFIG_FILE!);
  const endpoint = /^endpoint_url = (\S+)$/m.exec(config)![1]!;
  let paused = false;
  let stopped = false;

  return {
    endpoint,
    env,
    requests,
    async requestLog(): Promise<string[]> {
      // Moto logs a request after answering it, in its own thread: one more request, logged
      // after those answered before it, says when the log has caught up.
      const id = crypto.randomUUID();
      const seen = new Promise<void>((r) => markers.set(id, r));
      const res = await fetch(`${endpoint}/rep-log-marker-${id}`);
      await res.body?.cancel();
      await seen;
      markers.delete(id);
      return [...requests];
    },
    async bucket(name?: string): Promise<string> {
      const b = name ?? randomBucket();
      const res = await fetch(`${endpoint}/${b}`, { method: "PUT" });
      await res.body?.cancel();
      if (!res.ok && res.status !== 409) {
        throw new Error(`Cannot create bucket ${b}: ${res.status}`);
      }
      return b;
    },
    pause() {
      if (!paused && !stopped) child.kill("SIGSTOP");
      paused = true;
      return Promise.resolve();
    },
    restart() {
      if (paused && !stopped) child.kill("SIGCONT");
      paused = false;
      return Promise.resolve();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      if (paused) child.kill("SIGCONT");
      await child.stdin.close().catch(() => {});
      child.kill("SIGTERM");
      await child.status;
      await logDone;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** The first line of `stream` (then the rest is drained in the background). */
async function firstLine(stream: ReadableStream<Uint8Array>): Promise<string> {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) throw new Error("the server printed nothing");
    text += value;
    const nl = text.indexOf("\n");
    if (nl >= 0) {
      (async () => {
        while (!(await reader.read()).done) { /* drain */ }
      })().catch(() => {});
      return text.slice(0, nl);
    }
  }
}

/** Call `fn` with each line of `stream` until it ends. */
async function readLines(
  stream: ReadableStream<Uint8Array>,
  fn: (line: string) => void,
): Promise<void> {
  let rest = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    const lines = (rest + text).split("\n");
    rest = lines.pop()!;
    for (const l of lines) fn(l);
  }
  if (rest) fn(rest);
}

if (import.meta.main) {
  const srv = await startMoto(Deno.args[0] ? { port: Number(Deno.args[0]) } : {});
  console.log(JSON.stringify(srv.env));
  const quit = () => srv.stop().then(() => Deno.exit(0));
  Deno.addSignalListener("SIGINT", quit);
  Deno.addSignalListener("SIGTERM", quit);
}
