/**
 * The Cloud Storage SDK, pinned. Every GCS import goes through this module so the version lives in
 * one place and the driver works when imported by URL (full `npm:` specifiers, no import map).
 *
 * @module
 */
import "./quiet_deprecations.ts";

export { IdempotencyStrategy, Storage } from "npm:@google-cloud/storage@8.4.0";
export type { Bucket, File, StorageOptions } from "npm:@google-cloud/storage@8.4.0";
