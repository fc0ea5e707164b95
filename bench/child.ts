/**
 * The child process of bench/run.ts's whole-process figures (peak memory, rep against restic and
 * borg): one checkpoint or one checkout through the library, then a JSON line with the peak
 * resident set (VmHWM) and the seconds it took. A module of its own so that the child loads only
 * what it runs (bench/run.ts also imports the S3 SDK and the other benchmarks, which would count
 * in the peak).
 *
 *     deno run -A bench/child.ts idle | checkpoint REPO DIR FILE | checkout REPO TREE OUT
 *
 * @module
 */
import { Repository } from "../src/repository.ts";
import { Recorder } from "../src/writer/recorder.ts";

function peakRssKiB(): number {
  const m = /VmHWM:\s+(\d+)\s+kB/.exec(Deno.readTextFileSync("/proc/self/status"));
  return m ? Number(m[1]) : NaN;
}

const [mode, a, b, c] = Deno.args;
const t0 = performance.now();
let extra: Record<string, unknown> = {};
if (mode === "checkpoint") {
  const repo = await Repository.open(a!, { cache: false });
  const rec = await Recorder.start(repo, { code: null });
  const snap = await rec.snapshot(b!, [c!]);
  const ck = await rec.commit({ tree: snap.tree });
  await rec.stop("succeeded");
  extra = { tree: ck.files?.tree };
} else if (mode === "checkout") {
  const repo = await Repository.open(a!, { cache: false });
  const tree = await repo.tree(b!);
  await repo.checkout(tree.files, c!);
} else if (mode !== "idle") {
  throw new Error(`bench/child.ts: unknown mode ${mode}: use idle, checkpoint or checkout`);
}
console.log(
  JSON.stringify({ peakKiB: peakRssKiB(), seconds: (performance.now() - t0) / 1000, ...extra }),
);
Deno.exit(0);
