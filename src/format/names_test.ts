import assert from "node:assert/strict";
import { UsageError } from "../errors.ts";
import { checkName, isName, MAX_NAME, nameProblem } from "./names.ts";

Deno.test("checkName() accepts names of letters, digits, '.', '_' and '-'", () => {
  for (const n of ["baseline", "resnet50-lr0.1", "Run_2", "9lives", "z", "x".repeat(MAX_NAME)]) {
    assert.equal(checkName(n), n);
    assert.ok(isName(n));
  }
});

Deno.test("checkName() refuses names that could not be a key or would read as an id", () => {
  const bad: [string, RegExp][] = [
    ["", /empty/],
    ["x".repeat(MAX_NAME + 1), /longer/],
    ["-flag", /start with a letter or a digit/],
    [".hidden", /start/],
    ["a/b", /only letters/],
    ["a b", /only letters/],
    ["é", /start/],
    ["cafe", /hexadecimal/],
    ["DEADBEEF", /hexadecimal/],
    ["0123", /hexadecimal/],
  ];
  for (const [n, why] of bad) {
    assert.match(nameProblem(n) ?? "", why, n);
    assert.throws(() => checkName(n), UsageError);
    assert.ok(!isName(n));
  }
  assert.ok(!isName(3));
});
