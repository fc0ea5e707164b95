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
