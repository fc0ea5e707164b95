/**
 * A claimer process for tests/claims_test.ts: opens the store at URL, says "ready", waits for a
 * line on stdin, then claims every scope `<prefix>/<i>/` (i < COUNT) at once, each after a random
 * delay of up to JITTER ms, and prints one JSON line per scope with the outcome.
 *
 * Usage: deno run -A tests/claim_worker.ts URL PREFIX COUNT JITTER
 *
 * @module
 */
import { openStore } from "../src/storage/open.ts";
import { claim } from "../src/catalog/claims.ts";

const [url, prefix, countText, jitterText] = Deno.args;
if (!url || !prefix || !countText || !jitterText) {
  console.error("usage: claim_worker.ts URL PREFIX COUNT JITTER");
  Deno.exit(2);
}
const store = await openStore(url);
// Warm up the connection, so that every worker starts claiming at about the same time.
for await (const _ of store.list(`${prefix}/`)) break;
console.log("ready");
const reader = Deno.stdin.readable.getReader();
await reader.read();
reader.releaseLock();
const count = Number(countText);
const jitter = Number(jitterText);
await Promise.all(Array.from({ length: count }, async (_, i) => {
  await new Promise((r) => setTimeout(r, Math.random() * jitter));
  const scope = `${prefix}/${i}/`;
  const out = await claim(store, scope, { experiment: null, attempt: i + 2, patienceMs: 90_000 });
  console.log(JSON.stringify({
    scope,
    won: out.won,
    claimer: out.won ? out.claim.claimer : null,
    winner: out.won ? out.claim.claimer : out.winner?.claimer ?? null,
    rounds: out.rounds,
  }));
}));
await store.close();
