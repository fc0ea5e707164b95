/**
 * Experiment names: the rules a human name must follow (see docs/format.md, _Names_). A name is a
 * key segment (`names/<name>/`) on every store, and works wherever an id does, so it must never
 * read as an id prefix.
 *
 * @module
 */
import { UsageError } from "../errors.ts";

/** The longest name accepted. */
export const MAX_NAME = 100;

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Why `name` is not a valid experiment name, or null when it is. */
export function nameProblem(name: string): string | null {
  if (name.length === 0) return "it is empty";
  if (name.length > MAX_NAME) return `it is longer than ${MAX_NAME} characters`;
  if (!NAME.test(name)) {
    return /^[A-Za-z0-9]/.test(name)
      ? "it may hold only letters, digits, '.', '_' and '-'"
      : "it must start with a letter or a digit";
  }
  if (/^[0-9a-f]+$/i.test(name)) return "it is all hexadecimal, so it would read as an id";
  return null;
}

/** True for a valid experiment name. */
export function isName(name: unknown): name is string {
  return typeof name === "string" && nameProblem(name) === null;
}

/**
 * Check an experiment name given by a user.
 *
 * @param name The name, as typed.
 * @returns The name.
 * @throws {UsageError} When it breaks a rule; the message says which.
 *
 * @example Valid and invalid names
 * ```ts
 * import { checkName } from "./names.ts";
 * checkName("resnet50-lr0.1"); // "resnet50-lr0.1"
 * try { checkName("cafe"); } catch (e) { console.log((e as Error).message); }
 * ```
 */
export function checkName(name: string): string {
  const why = nameProblem(name);
  if (why) {
    throw new UsageError(
      `Invalid experiment name ${JSON.stringify(name)}: ${why}`,
      "Use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit and not all hex (e.g. resnet50-run1)",
    );
  }
  return name;
}
