/**
 * The claim protocol under real contention: several claimer processes (tests/claim_worker.ts) claim
 * the same scopes at the same moment on a local folder, on S3 (s3rver) and on the GCS emulator.
 * Every scope must end with exactly one winner that every loser names, and exactly one won marker.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT } from "./helpers.ts";
import { startS3, type TestServer } from "./servers/s3.ts";
import { startGcs } from "./servers/gcs.ts";
import { openStore } from "../src/storage/open.ts";
import { claimOfKey } from "../src/format/layout.ts";

const WORKERS = 5;
const SCOPES = 6;

interface Outcome {
  scope: string;
  won: boolean;
  claimer: string | null;
  winner: string | null;
  rounds: number;
}

/** Read a byte stream line by line: each call gives the next line, or null at the end. */
function lineReader(stream: ReadableStream<Uint8Array>): () => Promise<string | null> {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  return async () => {
    for (;;) {
      const nl = buf.indexOf("\n");
      if (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        return line;
      }
      const { value, done } = await reader.read();
      if (done) return buf ? (buf = "", buf) : null;
      buf += value;
    }
  };
}

/** Start WORKERS claimer processes, release them together, and collect their outcomes. */
async function contend(
  url: string,
  env: Record<string, string>,
  prefix: string,
  jitter: number,
): Promise<Outcome[]> {
  const procs = Array.from({ length: WORKERS }, () =>
    new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--quiet",
        join(ROOT, "tests", "claim_worker.ts"),
        url,
        prefix,
        String(SCOPES),
        String(jitter),
      ],
      env: { ...env, RUST_BACKTRACE: "0" },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn());
  const lines = procs.map((p) => lineReader(p.stdout));
  for (const l of lines) assert.equal(await l(), "ready");
  const go = new TextEncoder().encode("go\n");
  const writers = procs.map((p) => p.stdin.getWriter());
  await Promise.all(writers.map((w) => w.write(go)));
  const outcomes: Outcome[] = [];
  for (const [i, l] of lines.entries()) {
    for (let line = await l(); line !== null; line = await l()) outcomes.push(JSON.parse(line));
    await writers[i]!.close();
    const status = await procs[i]!.status;
    const err = await new Response(procs[i]!.stderr).text();
    assert.equal(status.code, 0, err);
  }
  return outcomes;
}

async function check(url: string, env: Record<string, string>, prefix: string, jitter: number) {
  const outcomes = await contend(url, env, prefix, jitter);
  assert.equal(outcomes.length, WORKERS * SCOPES);
  const store = await openStore(url);
  try {
    for (let i = 0; i < SCOPES; i++) {
      const scope = `${prefix}/${i}/`;
      const here = outcomes.filter((o) => o.scope === scope);
      const winners = here.filter((o) => o.won);
      assert.equal(winners.length, 1, `${scope}: ${JSON.stringify(here)}`);
      for (const o of here) assert.equal(o.winner, winners[0]!.claimer, JSON.stringify(here));
      const left = (await Array.fromAsync(store.list(scope))).map((x) => claimOfKey(scope, x.key));
      assert.deepEqual(
        left.map((c) => [c?.kind, c?.claimer]).sort(),
        [["claim", winners[0]!.claimer], ["won", winners[0]!.claimer]],
        "only the winner's claim and won marker remain",
      );
    }
  } finally {
    await store.close();
  }
}

async function backends(
  fn: (url: string, env: Record<string, string>) => Promise<void>,
  server: () => Promise<TestServer>,
  scheme: string,
) {
  const srv = await server();
  const saved = Object.keys(srv.env).map((k) => [k, Deno.env.get(k)] as const);
  for (const [k, v] of Object.entries(srv.env)) Deno.env.set(k, v);
  try {
    await fn(`${scheme}://${await srv.bucket()}/repo`, srv.env);
  } finally {
    for (const [k, v] of saved) v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
    await srv.stop();
  }
}

const scenario = async (url: string, env: Record<string, string>) => {
  // All at the same instant, then spread over a few hundred milliseconds.
  await check(url, env, "names-a", 0);
  await check(url, env, "names-b", 300);
};

Deno.test("claims: one winner per scope among concurrent processes on a local folder", async () => {
  const dir = await Deno.makeTempDir({ prefix: "rep-claims-e2e-" });
  try {
    await scenario(join(dir, "repo"), {});
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("claims: one winner per scope among concurrent processes on S3", async () => {
  await backends(scenario, startS3, "s3");
});

Deno.test("claims: one winner per scope among concurrent processes on GCS", async () => {
  await backends(scenario, startGcs, "gs");
});
