/**
 * Silence Node deprecation warnings from SDK dependencies (e.g. node-fetch's `punycode` import in the
 * GCS SDK), which would otherwise print on every cloud command. Imported first by `gcs.ts` so it runs
 * before the SDK loads.
 *
 * @module
 */
import process from "node:process";

(process as { noDeprecation?: boolean }).noDeprecation = true;
