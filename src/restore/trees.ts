/**
 * Reading trees: fetched by their sha256, checked against it and parsed strictly (a hostile
 * repository cannot make checkout leave its target), kept in memory once read.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { CorruptObjectError, NotFoundError } from "../errors.ts";
import { parseJson, parseTree, type Tree } from "../format/records.ts";
import { treeKey } from "../format/layout.ts";
import type { Store } from "../storage/store.ts";

/** Reads and verifies trees, remembering those already read. */
export class TreeReader {
  readonly #store: Store;
  readonly #trees = new Map<string, Tree>();

  constructor(store: Store) {
    this.#store = store;
  }

  /** Read and verify a tree by its sha256. */
  async get(hash: string): Promise<Tree> {
    const hit = this.#trees.get(hash);
    if (hit) return hit;
    const key = treeKey(hash);
    let bytes: Uint8Array;
    try {
      bytes = await this.#store.getBytes(key);
    } catch (e) {
      if (e instanceof NotFoundError) {
        throw new CorruptObjectError(
          `Missing object ${key}: a record refers to a file list that is not in the repository`,
          "Run `rep verify` to list what is damaged",
        );
      }
      throw e;
    }
    const actual = createHash("sha256").update(bytes).digest("hex");
    if (actual !== hash) {
      throw new CorruptObjectError(
        `Corrupt object ${key}: its content hashes to ${actual.slice(0, 12)}…`,
        "Run `rep verify` to list what is damaged",
      );
    }
    const tree = parseTree(parseJson(bytes, key), key);
    this.#trees.set(hash, tree);
    return tree;
  }
}
