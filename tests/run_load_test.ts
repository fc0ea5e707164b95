/**
 * `rep run` keeps up on a loaded machine (issue 10): a big file rewritten every ~0.3 s while
 * CPU burners keep every core busy. A version is only lost if rep sees its close too late (after
 * the script has reopened the file to write the next one); the capture thread sees it at once
 * however busy rep's main thread is with chunking. Every checkpoint must hold exactly the bytes
 * the script wrote at its step, none torn.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { assertExact, PRE, PY, repRun, setup, withExperiment } from "./run_helpers.ts";

const TEST_CACHE = await Deno.makeTempDir({ prefix: "rep-run-load-cache-" });
Deno.env.set("REP_CACHE_DIR", TEST_CACHE);
globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(TEST_CACHE, { recursive: true });
  } catch {
    // gone
  }
});

const STEPS = 10;

// The bytes are made once; each step changes its last 8 bytes, so the step's sha256 is known
// without reading the file back (which would give rep extra time) or hashing it in the gap.
const SCRIPT = PRE + `
N = 64 * 1024 * 1024
base = bytearray(os.urandom(N))
head = hashlib.sha256(memoryview(base)[:N - 8])
for step in range(1, ${STEPS} + 1):
    tail = step.to_bytes(8, "little")
    base[N - 8:] = tail
    with open(os.path.join(OUT, "model.bin"), "wb") as f:
        f.write(base)
    line({"step": step, "loss": 1.0 / step})
    h = head.copy()
    h.update(tail)
    with open("shas.jsonl", "a") as f:
        f.write(json.dumps({"step": step, "file": REL + "/model.bin", "sha": h.hexdigest()}) + "\\n")
    busy(0.3)
`;

/** Start `n` CPU burners (one Python busy loop each); returns a function that stops them. */
function burners(n: number): () => Promise<void> {
  const procs = Array.from({ length: n }, () =>
    new Deno.Command(PY, {
      args: ["-c", "while 1: pass"],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn());
  return async () => {
    for (const p of procs) {
      try {
        p.kill("SIGKILL");
      } catch {
        // gone
      }
    }
    await Promise.all(procs.map((p) => p.status));
  };
}

Deno.test("rep run: on a loaded machine, a 64 MiB file rewritten every 0.3 s is kept exactly at every step", async () => {
  const t = await setup({ "train.py": SCRIPT });
  const stop = burners(3);
  try {
    await Deno.mkdir(join(t.work, "output"));
    const r = await repRun(t, [], [PY, "train.py"], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /rewritten before rep could copy it/);
    await withExperiment(t.repo, async (exp) => {
      await assertExact(exp, t.work, Array.from({ length: STEPS }, (_, i) => i + 1));
    });
  } finally {
    await stop();
    await t.cleanup();
  }
});
