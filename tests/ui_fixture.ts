/**
 * A repository for the viewer's tests: many experiments of a small sweep (params, curves, every
 * status, tags, notes, logs, provenance with a git diff and secrets, code snapshots, torn files,
 * warnings, a missing pack) written through the recorder, as `rep run` and the library write them.
 *
 * Run it alone to look at the viewer by hand:
 * `deno run -A tests/ui_fixture.ts /tmp/ui-repo 200 && deno task rep ui -R /tmp/ui-repo`
 *
 * @module
 */
import { join } from "node:path";
import { Repository } from "../src/repository.ts";
import { Recorder } from "../src/writer/recorder.ts";
import { heartbeatKey, logKey, packKey } from "../src/format/layout.ts";
import { jsonBytes } from "../src/util.ts";

/** What the fixture made, for the tests to look for. */
export interface UiFixture {
  ids: string[];
  /** An experiment with a code snapshot, a log, provenance, weights, torn files and a warning. */
  rich: string;
  /** Its checkpoints, oldest first. */
  richCheckpoints: string[];
  /** The weights file of its last checkpoint. */
  weights: Uint8Array;
  /** An experiment whose hostile strings must show as text. */
  hostile: string;
  /** An experiment whose last checkpoint's pack was deleted. */
  broken: string;
  brokenCheckpoint: string;
  /** A running experiment (fresh heartbeat) with a log. */
  running: string;
}

/** A small deterministic PRNG. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const STATUSES = ["succeeded", "succeeded", "succeeded", "failed", "stopped", "crashed"] as const;

/** Write `n` experiments (at least 6) into the repository at `url`. */
export async function makeUiRepository(url: string, n = 200): Promise<UiFixture> {
  const repo = await Repository.open(url, { cache: false });
  const tmp = await Deno.makeTempDir({ prefix: "rep-ui-fixture-" });
  const rnd = prng(42);
  const ids: string[] = [];
  const out: Partial<UiFixture> = {};
  try {
    await Deno.mkdir(join(tmp, "code"));
    await Deno.writeTextFile(join(tmp, "code", "train.py"), "import torch\nlr = 0.1\nprint(lr)\n");
    await Deno.writeTextFile(join(tmp, "code", "README.md"), "# a <b>sweep</b>\n");
    await Deno.mkdir(join(tmp, "out"));
    for (let i = 0; i < n; i++) {
      const lr = [0.3, 0.1, 0.03, 0.01, 0.003, 0.001][i % 6]!;
      const batch = [32, 64, 128][Math.floor(i / 6) % 3]!;
      const optimizer = ["adam", "sgd"][Math.floor(i / 18) % 2]!;
      const layers = 2 + (i % 4);
      const rich = i === 0;
      const hostile = i === 1;
      const broken = i === 2;
      const running = i === 3;
      const params: Record<string, string | number | boolean> = {
        lr,
        batch_size: batch,
        optimizer,
        layers,
        dropout: Number((0.1 * (i % 3)).toFixed(1)),
        seed: i,
      };
      if (hostile) params.comment = "<img src=x onerror=alert(1)><script>alert(2)</script>";
      const rec = await Recorder.start(repo, {
        params,
        command: ["python", "train.py", "--lr", String(lr), "--batch-size", String(batch)],
        cwd: join(tmp, "code"),
        code: rich ? { root: join(tmp, "code"), files: ["train.py", "README.md"] } : null,
        git: { commit: "3f2a9c1e0b".padEnd(40, "0"), branch: "main", dirty: rich, remote: null },
        tags: i % 10 === 0 ? ["baseline"] : i % 7 === 0 ? ["sweep", "long"] : [],
        note: hostile ? '<b>bold?</b> & "quoted"' : i % 25 === 0 ? "tried a warmup schedule" : null,
        primaryMetric: { name: "val_loss", goal: "minimize" },
        provenance: rich
          ? {
            python: {
              version: "3.11.7",
              implementation: "CPython",
              packages: ["numpy==1.26.0", "torch==2.2.0"],
            },
            cpu: { model: "Test CPU", count: 8 },
            env: { PATH: "/usr/bin", AWS_SECRET_ACCESS_KEY: "[REDACTED]", LEAKED_TOKEN: "hunter2" },
            git_diff: "--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@\n-lr = 0.01\n+lr = 0.1\n",
            git_untracked: ["notes.txt"],
          }
          : {},
      });
      const steps = 10 + (i % 4) * 5;
      const speed = 0.15 + 0.5 * lr + rnd() * 0.05;
      const cks: string[] = [];
      for (let s = 0; s < steps; s++) {
        const loss = 2.3 * Math.exp(-speed * s) + 0.05 + rnd() * 0.03;
        let tree = null;
        let torn: string[] = [];
        if ((rich || broken) && s >= steps - 3) {
          const w = new Uint8Array(4096 + s).map((_, k) => (k * 31 + s) & 255);
          await Deno.writeFile(join(tmp, "out", "model.bin"), w);
          await Deno.writeTextFile(join(tmp, "out", `notes-${s}.txt`), `step ${s}\n`);
          const snap = await rec.snapshot(join(tmp, "out"), ["model.bin", `notes-${s}.txt`]);
          tree = snap.tree;
          torn = rich && s === steps - 2 ? ["optimizer.pt"] : [];
          if (rich) out.weights = w;
        }
        const ck = await rec.commit({
          tree,
          step: s,
          metrics: {
            loss: Number(loss.toFixed(5)),
            val_loss: Number((loss * 1.1 + rnd() * 0.02).toFixed(5)),
            accuracy: Number((1 - loss / 2.5).toFixed(4)),
          },
          torn,
          warnings: rich && s === steps - 1 ? ["model.bin changed while it was read"] : [],
        });
        cks.push(ck.id);
      }
      if (rich || running) {
        for (let k = 1; k <= 2; k++) {
          const text = Array.from({ length: 50 }, (_, j) => `epoch ${k} batch ${j} loss 0.${j}\n`)
            .join("");
          await rec.outbox.addBytes(
            logKey(rec.record.id, k),
            new TextEncoder().encode(text),
            "data",
          );
        }
      }
      const status = running
        ? "running"
        : rich || hostile || broken
        ? "succeeded"
        : STATUSES[i % STATUSES.length]!;
      if (status === "running" || status === "crashed") {
        await rec.outbox.drain();
        rec.abandon();
        if (status === "crashed") {
          const created = Date.parse(rec.record.created);
          await repo.store.put(
            heartbeatKey(rec.record.id),
            jsonBytes({
              pid: 1,
              host: "h",
              updated: new Date(created - 3600_000).toISOString(),
              interval: 10,
            }),
          );
        }
      } else {
        await rec.stop(status, {
          exitCode: status === "succeeded" ? 0 : status === "failed" ? 1 : null,
        });
      }
      ids.push(rec.record.id);
      if (rich) {
        out.rich = rec.record.id;
        out.richCheckpoints = cks;
      }
      if (hostile) out.hostile = rec.record.id;
      if (running) out.running = rec.record.id;
      if (broken) {
        out.broken = rec.record.id;
        out.brokenCheckpoint = cks[cks.length - 1]!;
      }
    }
    // Lose the pack of the broken experiment's last checkpoint (its earlier ones share no data).
    const views = await repo.list();
    const b = views.find((v) => v.id === out.broken)!;
    const last = b.checkpoints[b.checkpoints.length - 1]!;
    const tree = await repo.tree(last.files!.tree);
    const pack = tree.files.find((f) => f.path.startsWith("notes-"))!.chunks[0]![0];
    await repo.store.delete([packKey(pack)]);
    return { ...out, ids } as UiFixture;
  } finally {
    await repo.close();
    await Deno.remove(tmp, { recursive: true });
  }
}

if (import.meta.main) {
  const [dir, count] = Deno.args;
  if (!dir) throw new Error("Usage: deno run -A tests/ui_fixture.ts DIR [COUNT]");
  const t0 = performance.now();
  const f = await makeUiRepository(dir, Number(count ?? 200));
  console.log(
    JSON.stringify({
      ...f,
      ids: f.ids.length,
      weights: f.weights.length,
      ms: Math.round(performance.now() - t0),
    }),
  );
}
