import assert from "node:assert/strict";
import { parseRunArgs } from "./run.ts";

Deno.test("parseRunArgs: --resume takes an id only when it is clearly one", () => {
  const r = (args: string[]) => {
    const p = parseRunArgs(args);
    return { resume: p.values.resume, name: p.values.name, command: p.command };
  };
  assert.deepEqual(r(["--name", "a", "--resume", "--", "python", "t.py"]), {
    resume: [""],
    name: ["a"],
    command: ["python", "t.py"],
  });
  assert.deepEqual(r(["--name", "a", "--resume", "python", "t.py"]), {
    resume: [""],
    name: ["a"],
    command: ["python", "t.py"],
  });
  assert.deepEqual(r(["--resume", "resnet-1", "--", "python"]), {
    resume: ["resnet-1"],
    name: undefined,
    command: ["python"],
  });
  assert.deepEqual(r(["--resume", "3f2a1b9", "python"]), {
    resume: ["3f2a1b9"],
    name: undefined,
    command: ["python"],
  });
  assert.deepEqual(r(["--resume=resnet-1", "python"]), {
    resume: ["resnet-1"],
    name: undefined,
    command: ["python"],
  });
  assert.deepEqual(r(["--resume", "--keep-last", "1", "python"]).resume, [""]);
  assert.deepEqual(parseRunArgs(["--keep-best", "2", "--rerun", "x"]).values["keep-best"], ["2"]);
  assert.ok(parseRunArgs(["--rerun", "x"]).flags.has("rerun"));
});
