/**
 * A training script in TypeScript that records itself with rep's library (no `rep run` needed):
 * fits y = 3x + 1 by gradient descent, saves the weights every epoch and checkpoints them.
 *
 *     deno run -A examples/train_ts.ts --lr 0.1 --epochs 20
 *
 * @module
 */
import { parseArgs } from "node:util";
import { experiments, init } from "../mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { lr: { type: "string", default: "0.1" }, epochs: { type: "string", default: "20" } },
});
const lr = Number(values.lr);
const epochs = Number(values.epochs);

const exp = await init({
  path: new URL(".", import.meta.url).pathname,
  params: { lr, epochs },
  primaryMetric: { name: "loss", goal: "minimize" },
});
const out = await Deno.makeTempDir({ prefix: "rep-example-" });
const xs = Array.from({ length: 64 }, (_, i) => i / 32 - 1);
let w = 0;
let b = 0;
for (let epoch = 1; epoch <= epochs; epoch++) {
  let gw = 0;
  let gb = 0;
  let loss = 0;
  for (const x of xs) {
    const err = w * x + b - (3 * x + 1);
    gw += err * x;
    gb += err;
    loss += err * err;
  }
  w -= (lr * 2 * gw) / xs.length;
  b -= (lr * 2 * gb) / xs.length;
  await Deno.writeTextFile(`${out}/weights.json`, JSON.stringify({ w, b }));
  await exp.checkpoint({
    path: `${out}/weights.json`,
    step: epoch,
    metrics: { loss: loss / xs.length },
  });
}
await exp.stop();

const best = (await experiments.get(exp.id)).best()!;
const weights = await new Response(await best.open("weights.json")).json();
console.log(`experiment ${exp.id.slice(0, 7)}: best step ${best.step}, weights`, weights);
await Deno.remove(out, { recursive: true });
