/**
 * A store rooted under a key prefix of a bucket: the mapping between store keys (`packs/ab…`) and
 * full object keys (`team/exps/packs/ab…`), shared by the S3 and GCS drivers.
 *
 * @module
 */
import { checkKey } from "./keys.ts";

/** Store keys under an optional bucket prefix (no leading or trailing `/`). */
export class KeyPrefix {
  /** The prefix, without leading or trailing slashes (`""` for the bucket root). */
  readonly prefix: string;

  /**
   * @param prefix The folder in the bucket; slashes around it are dropped.
   * @example Keys under a prefix
   * ```ts
   * import { KeyPrefix } from "./prefix.ts";
   * const p = new KeyPrefix("/team/exps/");
   * if (p.full("packs/ab") !== "team/exps/packs/ab") throw new Error();
   * if (p.strip("team/exps/packs/ab") !== "packs/ab") throw new Error();
   * ```
   */
  constructor(prefix: string) {
    this.prefix = prefix.replace(/^\/+|\/+$/g, "");
  }

  /** The full object key of a store key (checked: a clean relative POSIX key). */
  full(key: string): string {
    checkKey(key);
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  /** The full listing prefix of a store-relative prefix (which may be empty or end in `/`). */
  listing(prefix: string): string {
    return this.prefix ? `${this.prefix}/${prefix}` : prefix;
  }

  /** The store key of a full object key. */
  strip(full: string): string {
    return this.prefix ? full.slice(this.prefix.length + 1) : full;
  }

  /** The repository URL of this prefix in `bucket`, e.g. `s3://bucket/team/exps`. */
  url(scheme: string, bucket: string): string {
    return `${scheme}://${bucket}${this.prefix ? "/" + this.prefix : ""}`;
  }
}
