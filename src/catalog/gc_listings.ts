/**
 * The `gc/` listings: objects an earlier `rep gc` plans to delete. Writers never reuse data listed
 * there, and the next `rep gc` deletes what is still unreferenced.
 *
 * @module
 */
import { parseJson } from "../format/records.ts";
import { PREFIX } from "../format/layout.ts";
import { NotFoundError } from "../errors.ts";
import type { Store } from "../storage/store.ts";
import { pool } from "../util.ts";

/** The objects listed for deletion by earlier `gc` runs (keys of packs and trees). */
export async function gcCandidates(store: Store): Promise<Map<string, string>> {
  const out = new Map<string, string>(); // key → listing's created time
  const keys: string[] = [];
  for await (const info of store.list(PREFIX.gc)) keys.push(info.key);
  await pool(keys, 8, async (k) => {
    try {
      const v = parseJson(await store.getBytes(k), k) as { created?: string; keys?: unknown };
      if (typeof v?.created !== "string" || !Array.isArray(v.keys)) return;
      for (const key of v.keys) if (typeof key === "string") out.set(key, v.created);
    } catch (e) {
      if (!(e instanceof NotFoundError)) throw e;
    }
  });
  return out;
}
