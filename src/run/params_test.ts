import assert from "node:assert/strict";
import { UsageError } from "../errors.ts";
import {
  mergeParams,
  parseCommandParams,
  parseParamFlag,
  parseParamValue,
  scriptArgsStart,
} from "./params.ts";

Deno.test("parseParamValue() types ints, floats and bools", () => {
  assert.equal(parseParamValue("3"), 3);
  assert.equal(parseParamValue("-3"), -3);
  assert.equal(parseParamValue("+3"), 3);
  assert.equal(parseParamValue("0"), 0);
  assert.equal(parseParamValue("-0"), 0);
  assert.equal(parseParamValue("0.01"), 0.01);
  assert.equal(parseParamValue("1e-3"), 0.001);
  assert.equal(parseParamValue("-2.5E+4"), -25000);
  assert.equal(parseParamValue(".5"), 0.5);
  assert.equal(parseParamValue("5."), 5);
  assert.equal(parseParamValue("true"), true);
  assert.equal(parseParamValue("FALSE"), false);
  assert.equal(parseParamValue("True"), true);
});

Deno.test("parseParamValue() keeps everything else as strings", () => {
  for (
    const s of [
      "",
      "nan",
      "inf",
      "-inf",
      "NaN",
      "0x10",
      "007",
      "01.5",
      "1_000",
      "yes",
      "no",
      "None",
      "null",
      "1e999",
      "9007199254740993",
      "adam",
      " 3",
      "3 ",
      "1.2.3",
      "e5",
      ".",
    ]
  ) {
    assert.equal(parseParamValue(s), s, s);
  }
});

Deno.test("parseParamFlag() splits at the first = and types the value", () => {
  assert.deepEqual(parseParamFlag("lr=0.01"), ["lr", 0.01]);
  assert.deepEqual(parseParamFlag("opt=adam"), ["opt", "adam"]);
  assert.deepEqual(parseParamFlag("expr=a=b"), ["expr", "a=b"]);
  assert.deepEqual(parseParamFlag("flag=true"), ["flag", true]);
  assert.deepEqual(parseParamFlag("empty="), ["empty", ""]);
  assert.deepEqual(parseParamFlag(" model.lr =1"), ["model.lr", 1]);
});

Deno.test("parseParamFlag() throws UsageError on a missing = or empty key", () => {
  assert.throws(() => parseParamFlag("lr"), UsageError);
  assert.throws(() => parseParamFlag("=3"), UsageError);
  assert.throws(() => parseParamFlag("  =3"), UsageError);
  assert.throws(() => parseParamFlag(""), /expected key=value/);
});

Deno.test("parseCommandParams() reads --name value, --name=value and bare assignments", () => {
  assert.deepEqual(
    parseCommandParams([
      "python",
      "train.py",
      "--lr",
      "0.01",
      "--epochs=3",
      "seed=7",
      "--optimizer",
      "adam",
      "--name=",
    ]),
    { lr: 0.01, epochs: 3, seed: 7, optimizer: "adam", name: "" },
  );
});

Deno.test("parseCommandParams() treats options without values as true flags", () => {
  assert.deepEqual(
    parseCommandParams(["python", "train.py", "--verbose", "--lr", "1", "--no-cuda", "--amp"]),
    { verbose: true, lr: 1, "no-cuda": true, amp: true },
  );
});

Deno.test("parseCommandParams() takes negative numbers as values", () => {
  assert.deepEqual(
    parseCommandParams([
      "python",
      "train.py",
      "--shift",
      "-1",
      "--lr",
      "-1e-3",
      "--b",
      "-.5",
      "--c",
      "-inf",
      "--d",
      "-x",
    ]),
    { shift: -1, lr: -0.001, b: -0.5, c: "-inf", d: true },
  );
});

Deno.test("parseCommandParams() ignores short options with their values, and positionals", () => {
  assert.deepEqual(
    parseCommandParams([
      "python",
      "train.py",
      "data.csv",
      "-v",
      "-n",
      "3",
      "--lr",
      "0.1",
      "extra",
      "-o=x",
      "-",
    ]),
    { lr: 0.1 },
  );
});

Deno.test("parseCommandParams() makes a list of a repeated key's values, in order", () => {
  assert.deepEqual(
    parseCommandParams(["python", "t.py", "--lr", "1", "b=2", "--lr=3", "b=x"]),
    { lr: [1, 3], b: [2, "x"] },
  );
  assert.deepEqual(
    parseCommandParams(["python", "t.py", "--tag", "a", "--tag", "b", "c", "--v", "--v"]),
    { tag: ["a", "b", "c"], v: true },
  );
});

Deno.test("parseCommandParams() never takes a bare assignment as a flag's value", () => {
  assert.deepEqual(
    parseCommandParams(["python", "app.py", "--multirun", "lr=0.1", "+model.depth=4", "++x=y"]),
    { multirun: true, lr: 0.1, "model.depth": 4, x: "y" },
  );
});

Deno.test("parseCommandParams() takes every value of a multi-value option and stops at --", () => {
  assert.deepEqual(
    parseCommandParams(["python", "t.py", "--layers", "2", "3", "4", "--", "--after", "1", "a=1"]),
    { layers: [2, 3, 4] },
  );
  assert.deepEqual(
    parseCommandParams(["python", "t.py", "--shift", "-1", "-2.5", "--name", "x", "lr=1"]),
    { shift: [-1, -2.5], name: "x", lr: 1 },
  );
});

Deno.test("mergeParams() adds -p values and refuses one that contradicts the command", () => {
  const own = parseCommandParams(["python", "t.py", "--lr", "0.01", "--config", "a.yaml", "d/"]);
  assert.deepEqual(mergeParams(own, { seed: 1, lr: 0.01, config: "a.yaml" }), {
    lr: 0.01,
    config: "a.yaml",
    seed: 1,
  });
  assert.throws(
    () => mergeParams(own, { lr: 0.1 }),
    (e: Error) =>
      e instanceof UsageError &&
      /-p lr=0.1 contradicts the command's own argument --lr 0.01/.test(e.message) &&
      /Drop -p lr/.test(e.hint ?? ""),
  );
});

Deno.test("parseCommandParams() keeps keys as written and values verbatim", () => {
  assert.deepEqual(
    parseCommandParams([
      "python",
      "t.py",
      "--batch-size",
      "32",
      "--batch_size=64",
      "--model.name",
      "gpt 2",
      "--eq=a=b",
    ]),
    { "batch-size": 32, batch_size: 64, "model.name": "gpt 2", eq: "a=b" },
  );
});

Deno.test("parseCommandParams() skips python interpreter options, -m and -c", () => {
  assert.deepEqual(parseCommandParams(["python3", "-u", "-W", "ignore", "t.py", "--a", "1"]), {
    a: 1,
  });
  assert.deepEqual(parseCommandParams(["python", "-uB", "-Xdev", "t.py", "--a", "1"]), { a: 1 });
  assert.deepEqual(parseCommandParams(["python", "-m", "pkg.train", "--a", "1"]), { a: 1 });
  assert.deepEqual(parseCommandParams(["python", "-um", "pkg.train", "--a", "1"]), { a: 1 });
  assert.deepEqual(parseCommandParams(["python", "-mpkg.train", "--a", "1"]), { a: 1 });
  assert.deepEqual(parseCommandParams(["python", "-c", "import x", "--a", "1"]), { a: 1 });
  assert.deepEqual(parseCommandParams(["/usr/bin/python3.11", "t.py", "--a=1"]), { a: 1 });
  assert.deepEqual(parseCommandParams(["python", "--lr", "1"]), {});
  assert.deepEqual(parseCommandParams(["python"]), {});
  assert.deepEqual(parseCommandParams([]), {});
});

Deno.test("parseCommandParams() skips node, deno and bun with their options", () => {
  assert.deepEqual(parseCommandParams(["node", "--require", "ts-node", "x.js", "--a", "1"]), {
    a: 1,
  });
  assert.deepEqual(parseCommandParams(["deno", "run", "-A", "x.ts", "--a", "1"]), { a: 1 });
  assert.deepEqual(
    parseCommandParams(["deno", "run", "--config", "deno.json", "--allow-read=.", "x.ts", "b=2"]),
    { b: 2 },
  );
  assert.deepEqual(parseCommandParams(["deno", "x.ts", "--a", "1"]), { a: 1 });
  assert.deepEqual(parseCommandParams(["bun", "run", "x.ts", "--a", "1"]), { a: 1 });
  assert.deepEqual(parseCommandParams(["bash", "-e", "run.sh", "--a", "1"]), { a: 1 });
});

Deno.test("parseCommandParams() strips wrappers and launchers", () => {
  assert.deepEqual(
    parseCommandParams(["uv", "run", "--with", "torch", "python", "t.py", "--a", "1"]),
    { a: 1 },
  );
  assert.deepEqual(parseCommandParams(["poetry", "run", "python", "t.py", "--a", "1"]), { a: 1 });
  assert.deepEqual(
    parseCommandParams(["conda", "run", "-n", "ml", "python", "-u", "t.py", "--a", "1"]),
    { a: 1 },
  );
  assert.deepEqual(
    parseCommandParams(["env", "-u", "X", "CUDA_VISIBLE_DEVICES=0", "python", "t.py", "--a", "1"]),
    { a: 1 },
  );
  assert.deepEqual(parseCommandParams(["nohup", "nice", "-n", "5", "python", "t.py", "b=2"]), {
    b: 2,
  });
  assert.deepEqual(
    parseCommandParams(["torchrun", "--nproc_per_node", "4", "--standalone", "t.py", "--a", "1"]),
    { a: 1 },
  );
  assert.deepEqual(
    parseCommandParams(["accelerate", "launch", "--num_processes=2", "t.py", "--a", "1"]),
    { a: 1 },
  );
});

Deno.test("parseCommandParams() treats an unknown program as the script", () => {
  assert.deepEqual(parseCommandParams(["./train", "--a", "1", "b=x"]), { a: 1, b: "x" });
  assert.deepEqual(parseCommandParams(["./train.py", "--a", "1"]), { a: 1 });
});

Deno.test("scriptArgsStart() points after the script", () => {
  assert.equal(scriptArgsStart(["python", "train.py", "--lr", "1"]), 2);
  assert.equal(scriptArgsStart(["python", "-m", "pkg.mod"]), 3);
  assert.equal(scriptArgsStart(["deno", "run", "-A", "x.ts"]), 4);
  assert.equal(scriptArgsStart(["node", "x.js", "a"]), 2);
  assert.equal(scriptArgsStart(["python", "-m"]), 2);
  assert.equal(scriptArgsStart(["torchrun", "--foo"]), 2);
});
