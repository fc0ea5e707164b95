import assert from "node:assert/strict";
import { CorruptObjectError } from "../errors.ts";
import { MAX_CHUNK } from "./chunker.ts";
import {
  keyTime,
  packIndexKey,
  packIndexListStart,
  packIndexOfKey,
  parseKeyTime,
} from "./layout.ts";
import { encodePackIndex, type PackEntry, parsePackIndex } from "./pack_index.ts";

const PACK = "0123456789abcdef0123456789abcdef";
const H1 = "a".repeat(64);
const H2 = "b".repeat(64);
const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

Deno.test("packIndexKey() and packIndexOfKey() round-trip; keys sort by time", () => {
  const t = new Date("2026-12-01T19:42:10.123Z");
  const key = packIndexKey(PACK, t);
  assert.equal(key, `pack-index/20261201T194210123Z-${PACK}.json`);
  assert.deepEqual(packIndexOfKey(key), { time: t, id: PACK });
  assert.equal(packIndexOfKey(`pack-index/x-${PACK}.json`), null);
  assert.equal(packIndexOfKey(`packs/${PACK}`), null);
  assert.equal(packIndexOfKey(`pack-index/20261201T194210123Z-${PACK}.json.tmp`), null);
  const later = packIndexKey(PACK, new Date(t.getTime() + 1));
  assert.ok(later > key);
  // Listing after the start of a time sees keys of that very millisecond.
  assert.ok(key > packIndexListStart(t));
  assert.ok(key < packIndexListStart(new Date(t.getTime() + 1)));
  assert.deepEqual(parseKeyTime(keyTime(t)), t);
  assert.equal(parseKeyTime("20261301T000000000Z"), null);
});

Deno.test("encodePackIndex() output parses back to the same packs", () => {
  const packs: PackEntry[] = [{ id: PACK, size: 300, chunks: [[H1, 0, 100], [H2, 100, 200]] }];
  const created = new Date("2026-01-02T03:04:05.006Z");
  const bytes = encodePackIndex(packs, created);
  assert.deepEqual(JSON.parse(new TextDecoder().decode(bytes)), {
    format: 2,
    type: "pack-index",
    created: "2026-01-02T03:04:05.006Z",
    packs: [{ id: PACK, size: 300, chunks: [[H1, 0, 100], [H2, 100, 200]] }],
  });
  assert.deepEqual(parsePackIndex(bytes).packs, packs);
});

Deno.test("parsePackIndex() refuses malformed objects", () => {
  const base = { format: 2, type: "pack-index", created: "2026-01-01T00:00:00.000Z" };
  const bad: [unknown, RegExp][] = [
    [{ ...base, type: "tree", packs: [] }, /type/],
    [{ ...base, format: 3, packs: [] }, /format/],
    [{ ...base, created: "yesterday", packs: [] }, /created/],
    [{ ...base, packs: {} }, /packs is not a list/],
    [{ ...base, packs: [{ id: "x", size: 0, chunks: [] }] }, /valid id/],
    [{ ...base, packs: [{ id: PACK, size: 10, chunks: [["zz", 0, 10]] }] }, /hash/],
    [{ ...base, packs: [{ id: PACK, size: 20, chunks: [[H1, 0, 10], [H2, 11, 9]] }] }, /contig/],
    [{ ...base, packs: [{ id: PACK, size: 10, chunks: [[H1, 1, 9]] }] }, /contig/],
    [{ ...base, packs: [{ id: PACK, size: 0, chunks: [[H1, 0, 0]] }] }, /length/],
    [
      { ...base, packs: [{ id: PACK, size: MAX_CHUNK + 1, chunks: [[H1, 0, MAX_CHUNK + 1]] }] },
      /length/,
    ],
    [{ ...base, packs: [{ id: PACK, size: 11, chunks: [[H1, 0, 10]] }] }, /size/],
    [{ ...base, packs: [{ id: PACK, size: 10, chunks: [[H1, 0]] }] }, /malformed/],
  ];
  for (const [v, why] of bad) {
    assert.throws(() => parsePackIndex(enc(v)), (e: Error) => {
      assert.ok(e instanceof CorruptObjectError, String(e));
      assert.match(e.message, why);
      return true;
    });
  }
  assert.throws(() => parsePackIndex(new Uint8Array([0xff, 0xfe])), CorruptObjectError);
  assert.deepEqual(parsePackIndex(enc({ ...base, packs: [] })).packs, []);
});
