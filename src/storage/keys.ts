import { UsageError } from "../errors.ts";

/** Throw unless `key` is a clean relative POSIX key (no empty, `.` or `..` segments, no backslash). */
export function checkKey(key: string): string {
  if (
    key.length === 0 || key.startsWith("/") || key.includes("\\") || key.includes("\0") ||
    key.split("/").some((s) => s === "" || s === "." || s === "..")
  ) {
    throw new UsageError(
      `Invalid storage key ${JSON.stringify(key)}: keys are relative POSIX paths`,
    );
  }
  return key;
}
