/*
 * The chunk-boundary kernel of rep's content-defined chunking (FastCDC with normalized
 * chunking), compiled to WebAssembly: see src/format/chunker.ts for the format's definition and
 * the reference implementation in TypeScript, and tools/build_gear_wasm.ts for the build.
 *
 * Memory layout (the memory is imported, shared, and laid out by the caller):
 *   [1024, 2048)  the gear table: 256 little-endian 32-bit values (GEAR in chunker.ts)
 *   anything else the caller's: the bytes to chunk and the array that receives cut positions.
 * Positions are byte offsets from `mem`, which the caller passes as 0 (the start of the memory: a
 * parameter, since a constant null pointer would let the compiler assume it is never read).
 *
 * The cut test `(h & MASK) == 0`, with MASK's high bits set, is `h < 2^(32 - bits)`.
 */
#include <stdint.h>

#define MIN_CHUNK (16 * 1024)
#define AVG_CHUNK (64 * 1024)
#define MAX_CHUNK (256 * 1024)
/* MASK_S = 0xffffc000 (18 bits): h & MASK_S == 0 <=> h < 2^14. */
#define BELOW_S (1u << 14)
/* MASK_L = 0xfffc0000 (14 bits): h & MASK_L == 0 <=> h < 2^18. */
#define BELOW_L (1u << 18)

#define GEAR ((const uint32_t *)1024)

/* One byte into the rolling hash; return the cut after byte i + k when the test passes. */
#define STEP(k)                                  \
  h = (h << 1) + GEAR[mem[i + (k)]];             \
  if (h < below) return i + (k) + 1;

/*
 * Roll the hash `*hp` over bytes [i, stop); return the first cut (the position after the byte
 * where h < below), or -1 with *hp updated. Unrolled by eight: a cut is still tested after every
 * byte.
 */
static inline __attribute__((always_inline)) int32_t roll(const uint8_t *mem, uint32_t *hp, int32_t i, int32_t stop, uint32_t below) {
  uint32_t h = *hp;
  for (; i + 8 <= stop; i += 8) {
    STEP(0) STEP(1) STEP(2) STEP(3) STEP(4) STEP(5) STEP(6) STEP(7)
  }
  for (; i < stop; i++) {
    STEP(0)
  }
  *hp = h;
  return -1;
}

/* findCut of chunker.ts: the end of the chunk starting at `start`, or -1 if undecided. */
static inline __attribute__((always_inline)) int32_t find_cut(const uint8_t *mem, int32_t start, int32_t end, int32_t final) {
  if (end - start <= MIN_CHUNK) return final ? end : -1;
  int32_t limit = end < start + MAX_CHUNK ? end : start + MAX_CHUNK;
  int32_t normal = limit < start + AVG_CHUNK ? limit : start + AVG_CHUNK;
  uint32_t h = 0;
  int32_t cut = roll(mem, &h, start + MIN_CHUNK, normal, BELOW_S);
  if (cut >= 0) return cut;
  cut = roll(mem, &h, normal, limit, BELOW_L);
  if (cut >= 0) return cut;
  if (limit == start + MAX_CHUNK) return limit;
  return final ? end : -1;
}

/* ---- the same cuts with WebAssembly SIMD ----------------------------------------------------
 *
 * With a left shift by one per byte, a 32-bit gear hash forgets a byte 32 bytes after it: once a
 * roll has seen 32 bytes, h after byte p is sum(GEAR[mem[p - k]] << k, k = 0..31), whatever came
 * before. So four lanes can each compute the hash over their own quarter of a block (after 32
 * bytes of warm-up in front of it) with no data passed between lanes. A block whose lanes saw no
 * h below the threshold holds no cut; the first block that did is rolled again byte by byte (the
 * scalar loop above, from the hash of its 32 bytes before) to find the exact first cut. So the
 * cuts are those of the scalar kernel by construction; the lanes only rule blocks out.
 */
#include <wasm_simd128.h>

/* Bytes per lane per block, and the block (four lanes). */
#define LANE 512
#define BLOCK (4 * LANE)
/* A hash's memory: bytes further back than this are shifted out. */
#define WINDOW 32

/* The hash after byte i - 1 from the 32 bytes before i (which must all belong to the roll). */
static inline __attribute__((always_inline)) uint32_t window(const uint8_t *mem, int32_t i) {
  uint32_t h = 0;
  for (int32_t k = i - WINDOW; k < i; k++) h = (h << 1) + GEAR[mem[k]];
  return h;
}

/* GEAR[q[0]], GEAR[q[LANE]], GEAR[q[2 LANE]], GEAR[q[3 LANE]] as four lanes. */
static inline __attribute__((always_inline)) v128_t gather(const uint8_t *q) {
  v128_t v = wasm_v128_load32_zero(&GEAR[q[0]]);
  v = wasm_v128_load32_lane(&GEAR[q[LANE]], v, 1);
  v = wasm_v128_load32_lane(&GEAR[q[2 * LANE]], v, 2);
  return wasm_v128_load32_lane(&GEAR[q[3 * LANE]], v, 3);
}

/* Whether some byte of [i, i + BLOCK) leaves h below `below` (needs the 32 bytes before i). */
static inline __attribute__((always_inline)) int block_hit(const uint8_t *mem, int32_t i, uint32_t below) {
  const uint8_t *q = mem + i - WINDOW;
  v128_t h = wasm_i32x4_splat(0);
  for (int32_t k = 0; k < WINDOW; k++) h = wasm_i32x4_add(wasm_i32x4_shl(h, 1), gather(q + k));
  q += WINDOW;
  v128_t m = wasm_i32x4_splat(-1);
  for (int32_t k = 0; k < LANE; k += 4) {
    h = wasm_i32x4_add(wasm_i32x4_shl(h, 1), gather(q + k));
    m = wasm_u32x4_min(m, h);
    h = wasm_i32x4_add(wasm_i32x4_shl(h, 1), gather(q + k + 1));
    m = wasm_u32x4_min(m, h);
    h = wasm_i32x4_add(wasm_i32x4_shl(h, 1), gather(q + k + 2));
    m = wasm_u32x4_min(m, h);
    h = wasm_i32x4_add(wasm_i32x4_shl(h, 1), gather(q + k + 3));
    m = wasm_u32x4_min(m, h);
  }
  return wasm_v128_any_true(wasm_u32x4_lt(m, wasm_u32x4_splat(below)));
}

/*
 * roll() for a roll that began at `s0` (where h was 0): bytes [i, stop) with the hash `*hp` of
 * the bytes before i. The first 32 bytes of a roll go through the scalar loop (their hash still
 * depends on where the roll began); then whole blocks are ruled out four lanes at a time.
 */
static inline __attribute__((always_inline)) int32_t roll_simd(const uint8_t *mem, uint32_t *hp, int32_t i, int32_t stop, uint32_t below, int32_t s0) {
  int32_t warm = s0 + WINDOW < stop ? s0 + WINDOW : stop;
  if (i < warm) {
    int32_t cut = roll(mem, hp, i, warm, below);
    if (cut >= 0) return cut;
    i = warm;
  }
  int32_t skipped = 0;
  while (i + BLOCK <= stop) {
    if (block_hit(mem, i, below)) {
      uint32_t h = window(mem, i);
      int32_t cut = roll(mem, &h, i, i + BLOCK, below);
      if (cut >= 0) return cut;
    }
    i += BLOCK;
    skipped = 1;
  }
  if (skipped) *hp = window(mem, i);
  return roll(mem, hp, i, stop, below);
}

/* find_cut with roll_simd. */
static inline __attribute__((always_inline)) int32_t find_cut_simd(const uint8_t *mem, int32_t start, int32_t end, int32_t final) {
  if (end - start <= MIN_CHUNK) return final ? end : -1;
  int32_t limit = end < start + MAX_CHUNK ? end : start + MAX_CHUNK;
  int32_t normal = limit < start + AVG_CHUNK ? limit : start + AVG_CHUNK;
  int32_t s0 = start + MIN_CHUNK;
  uint32_t h = 0;
  int32_t cut = roll_simd(mem, &h, s0, normal, BELOW_S, s0);
  if (cut >= 0) return cut;
  cut = roll_simd(mem, &h, normal, limit, BELOW_L, s0);
  if (cut >= 0) return cut;
  if (limit == start + MAX_CHUNK) return limit;
  return final ? end : -1;
}

/*
 * Cut [start, end) into chunks: write the end of each decided chunk to out[0..], at most `cap`
 * of them, and return how many were written. The bytes after the last cut are undecided (more
 * data is needed) unless `final`, in which case every byte up to `end` is in a chunk (when fewer
 * than `cap` were written).
 */
__attribute__((export_name("cuts")))
int32_t cuts(const uint8_t *mem, int32_t start, int32_t end, int32_t final, int32_t *out, int32_t cap) {
  int32_t k = 0;
  while (k < cap && start < end) {
    int32_t cut = find_cut(mem, start, end, final);
    if (cut < 0) break;
    out[k++] = cut;
    start = cut;
  }
  return k;
}

/* cuts() with the SIMD lanes: the same cuts. */
__attribute__((export_name("cuts_simd")))
int32_t cuts_simd(const uint8_t *mem, int32_t start, int32_t end, int32_t final, int32_t *out, int32_t cap) {
  int32_t k = 0;
  while (k < cap && start < end) {
    int32_t cut = find_cut_simd(mem, start, end, final);
    if (cut < 0) break;
    out[k++] = cut;
    start = cut;
  }
  return k;
}
