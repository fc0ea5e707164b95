/**
 * Open a {@link Store} from a repository URL. Cloud drivers load only when their scheme is used, so
 * local commands never pay for the SDKs.
 *
 * @module
 */
import { isAbsolute, resolve } from "node:path";
import { ConfigError } from "../errors.ts";
import { LocalStore } from "./local.ts";
import type { Store } from "./store.ts";

/**
 * Open the store a URL names: `file:///abs`, `file://rel` or a plain path (relative to `base`),
 * `s3://bucket/prefix`, `gs://bucket/prefix`.
 */
export async function openStore(url: string, base = Deno.cwd()): Promise<Store> {
  const m = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/i.exec(url);
  if (!m) return new LocalStore(resolve(base, url));
  const scheme = m[1]!.toLowerCase();
  const rest = m[2]!;
  switch (scheme) {
    case "file": {
      if (rest === "") throw badUrl(url, "the path is empty");
      return new LocalStore(isAbsolute(rest) ? resolve(rest) : resolve(base, rest));
    }
    case "s3": {
      const { bucket, prefix } = splitBucket(url, rest);
      const { S3Store } = await import("./s3.ts");
      return new S3Store(bucket, prefix);
    }
    case "gs": {
      const { bucket, prefix } = splitBucket(url, rest);
      const { GcsStore } = await import("./gcs.ts");
      return new GcsStore(bucket, prefix);
    }
    default:
      throw badUrl(url, `the scheme "${scheme}" is not supported`);
  }
}

function splitBucket(url: string, rest: string): { bucket: string; prefix: string } {
  const slash = rest.indexOf("/");
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  const prefix = slash < 0 ? "" : rest.slice(slash + 1).replace(/\/+$/, "");
  if (!/^[a-z0-9][a-z0-9._-]{1,221}[a-z0-9]$/.test(bucket)) {
    throw badUrl(url, `"${bucket}" is not a valid bucket name`);
  }
  return { bucket, prefix };
}

function badUrl(url: string, why: string): ConfigError {
  return new ConfigError(
    `Invalid repository URL "${url}": ${why}`,
    "Use a local path, file:///absolute/path, s3://bucket/prefix or gs://bucket/prefix",
  );
}
