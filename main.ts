/**
 * The `rep` command line. Dispatches to `src/cli/<command>.ts` (loaded lazily) and is the only place
 * that exits the process: 0 ok, 1 failure, 2 usage error.
 *
 * @module
 */
import { main } from "./src/cli/main.ts";

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
