import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import { buildGearWasm, generatedModule } from "./build_gear_wasm.ts";
import { GEAR_WASM_BASE64, GEAR_WASM_SHA256 } from "../src/format/gear_wasm.ts";

/** Whether clang is installed (spawning a missing program throws at once, before any promise). */
async function clangInstalled(): Promise<boolean> {
  try {
    const o = await new Deno.Command("clang", {
      args: ["--version"],
      stdout: "null",
    }).output();
    return o.success;
  } catch {
    return false;
  }
}
const hasClang = await clangInstalled();

Deno.test("the embedded kernel is the module its sha256 names", () => {
  const bytes = Buffer.from(GEAR_WASM_BASE64, "base64");
  assert.equal(
    createHash("sha256").update(bytes).digest("hex"),
    GEAR_WASM_SHA256,
  );
  assert.ok(WebAssembly.validate(bytes));
});

Deno.test({
  name: "build_gear_wasm rebuilds src/format/gear_wasm.ts byte for byte from gear.c",
  ignore: !hasClang,
  async fn() {
    const { bytes, clang } = await buildGearWasm();
    const committed = await Deno.readTextFile(
      fileURLToPath(new URL("../src/format/gear_wasm.ts", import.meta.url)),
    );
    const recorded = /Compiler: (.*)/.exec(committed)?.[1];
    if (recorded !== clang) {
      console.warn(
        `skipped the byte comparison: built with "${recorded}", here "${clang}"`,
      );
      return;
    }
    assert.equal(generatedModule(bytes, clang), committed);
  },
});
