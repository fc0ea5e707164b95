import assert from "node:assert/strict";
import { parsePythonDict, type ScalarEvent, ScalarParser } from "./scalars.ts";

/** The parser, with the `line` of each event left out (tested on its own below). */
class Plain {
  #p = new ScalarParser();
  push(t: string): Omit<ScalarEvent, "line">[] {
    return this.#p.push(t).map(({ line: _l, ...e }) => e);
  }
  flush(): Omit<ScalarEvent, "line">[] {
    return this.#p.flush().map(({ line: _l, ...e }) => e);
  }
}

function parseAll(...parts: string[]): Omit<ScalarEvent, "line">[] {
  const p = new Plain();
  return [...parts.flatMap((t) => p.push(t)), ...p.flush()];
}

Deno.test("ScalarParser emits a group when a step line arrives", () => {
  assert.deepEqual(
    parseAll("step: 1\nloss: 0.5\nacc: 0.8\nstep: 2\nloss: 0.4\nacc: 0.9\n"),
    [
      { step: 1, metrics: { loss: 0.5, acc: 0.8 } },
      { step: 2, metrics: { loss: 0.4, acc: 0.9 } },
    ],
  );
});

Deno.test("ScalarParser emits a group when a key repeats, without inventing a step", () => {
  assert.deepEqual(parseAll("loss: 1\nacc: 0.1\nloss: 0.5\nacc: 0.2\nloss: 0.25\n"), [
    { metrics: { loss: 1, acc: 0.1 } },
    { metrics: { loss: 0.5, acc: 0.2 } },
    { metrics: { loss: 0.25 } },
  ]);
  assert.deepEqual(parseAll("step: 4\nloss: 1\nloss: 2\n"), [
    { step: 4, metrics: { loss: 1 } },
    { metrics: { loss: 2 } },
  ]);
});

Deno.test("ScalarParser groups scalars by their (step N) suffix", () => {
  assert.deepEqual(
    parseAll(
      "loss: 0.5 (step 10)\nacc: 0.7 (step 10)\nloss: 0.4 (step 20)\nacc: 0.8\nlr: 1e-3 (step 20)\n",
    ),
    [
      { step: 10, metrics: { loss: 0.5, acc: 0.7 } },
      { step: 20, metrics: { loss: 0.4, acc: 0.8, lr: 0.001 } },
    ],
  );
  assert.deepEqual(parseAll("step: 3\nloss: 1 (step 3)\nloss: 2 (step 3)\n"), [
    { step: 3, metrics: { loss: 1 } },
    { step: 3, metrics: { loss: 2 } },
  ]);
});

Deno.test("ScalarParser never emits empty groups", () => {
  assert.deepEqual(parseAll("step: 1\nstep: 2\nhello\n"), []);
  assert.deepEqual(parseAll("step: 1\nstep: 2\nx: 1\n"), [{ step: 2, metrics: { x: 1 } }]);
  assert.deepEqual(parseAll(""), []);
});

Deno.test("ScalarParser parses signed floats, nan and inf", () => {
  const [event] = parseAll(
    "a: -1\nb: +2.5\nc: .5\nd: 1e-3\ne: -2.5E+4\nf: nan\ng: -inf\nh: Infinity\ni: 5.\n",
  );
  assert.deepEqual(Object.keys(event!.metrics), ["a", "b", "c", "d", "e", "f", "g", "h", "i"]);
  const m = event!.metrics;
  assert.equal(m.a, -1);
  assert.equal(m.b, 2.5);
  assert.equal(m.c, 0.5);
  assert.equal(m.d, 0.001);
  assert.equal(m.e, -25000);
  assert.ok(Number.isNaN(m.f));
  assert.equal(m.g, -Infinity);
  assert.equal(m.h, Infinity);
  assert.equal(m.i, 5);
});

Deno.test("ScalarParser ignores lines that do not match", () => {
  assert.deepEqual(
    parseAll(
      [
        "epoch 1 loss 0.5",
        "loss:0.5",
        "loss: 0.5 extra",
        "1loss: 3",
        "name: resnet",
        "loss : 3",
        "step: 1.5",
        "step: -1",
        "step: x",
        "loss: 1 (step -1)",
        "",
        "Epoch: 3",
        "train/loss: 0.1",
        "  val_loss:\t0.2  ",
        "a:b: 7",
      ].join("\n") + "\n",
    ),
    [{ metrics: { Epoch: 3, "train/loss": 0.1, val_loss: 0.2, "a:b": 7 } }],
  );
});

Deno.test("ScalarParser buffers partial lines across pushes and accepts CR and CRLF", () => {
  const p = new Plain();
  assert.deepEqual(p.push("step: 1\nlo"), []);
  assert.deepEqual(p.push("ss: 0."), []);
  assert.deepEqual(p.push("5\r\nacc: 1\r"), []);
  assert.deepEqual(p.push("\nstep: 2\r"), [{ step: 1, metrics: { loss: 0.5, acc: 1 } }]);
  assert.deepEqual(p.push("loss: 0.25"), []);
  assert.deepEqual(p.flush(), [{ step: 2, metrics: { loss: 0.25 } }]);
});

Deno.test("ScalarParser.flush() starts over without a step", () => {
  const p = new Plain();
  p.push("step: 7\nx: 1\n");
  assert.deepEqual(p.flush(), [{ step: 7, metrics: { x: 1 } }]);
  assert.deepEqual(p.flush(), []);
  assert.deepEqual([...p.push("x: 2\n"), ...p.flush()], [{ metrics: { x: 2 } }]);
});

Deno.test("ScalarParser drops a partial line longer than 64 KiB", () => {
  const p = new Plain();
  assert.deepEqual(p.push("x: 1\n"), []);
  for (let i = 0; i < 10; i++) p.push("y".repeat(10_000));
  assert.deepEqual(p.push(": 5\nz: 2\n"), []);
  assert.deepEqual(p.flush(), [{ metrics: { x: 1, z: 2 } }]);
});

Deno.test("ScalarParser gives each group the line number of its last scalar", () => {
  const p = new ScalarParser();
  const evs = [...p.push("step: 1\nloss: 1\nnoise\nacc: 2\nstep: 2\nloss: 3\n"), ...p.flush()];
  assert.deepEqual(evs.map((e) => [e.step, e.line]), [[1, 4], [2, 6]]);
});

Deno.test("ScalarParser reads Hugging Face Trainer dicts as one group each", () => {
  const p = new ScalarParser();
  const evs = [
    ...p.push("{'loss': 0.69, 'learning_rate': 5e-05, 'epoch': 1.0}\n"),
    ...p.push("{'eval_loss': nan, 'step': 20}\n{'note': 'text'}\n"),
    ...p.flush(),
  ];
  assert.deepEqual(evs.map((e) => [e.step, e.metrics, e.line]), [
    [undefined, { loss: 0.69, learning_rate: 5e-05, epoch: 1 }, 1],
    [20, { eval_loss: NaN }, 2],
  ]);
  assert.equal(parsePythonDict("{'a': [1]}"), null);
  assert.equal(parsePythonDict("{}"), null);
});
