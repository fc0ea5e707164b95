/**
 * Error types for the conditions a caller handles. Each message names what failed, why, and the fix.
 * The CLI maps {@link UsageError} to exit code 2 and every other error to exit code 1.
 *
 * @module
 */

/** Base class of every error `rep` raises on purpose. `hint` says how to fix it. */
export class RepError extends Error {
  /** How to fix the problem, shown after the message by the CLI. */
  readonly hint: string | undefined;
  /**
   * Create an error with the fix shown after its message.
   *
   * @param message What failed and why.
   * @param hint How to fix it.
   * @param options The cause, if any.
   */
  constructor(message: string, hint?: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.hint = hint;
  }
}

/** Bad command-line input or bad arguments to a library call (CLI exit code 2). */
export class UsageError extends RepError {}

/** The configuration file or repository URL is invalid. */
export class ConfigError extends RepError {}

/** An experiment, checkpoint, file or object does not exist. */
export class NotFoundError extends RepError {}

/** An id prefix matches more than one experiment or checkpoint. */
export class AmbiguousIdError extends RepError {
  /** The full ids that matched. */
  readonly candidates: string[];
  /**
   * Create the error of a prefix that matches several ids.
   *
   * @param message The prefix and what it matched.
   * @param candidates The full ids that matched.
   * @param hint How to pick one.
   */
  constructor(message: string, candidates: string[], hint?: string) {
    super(message, hint);
    this.candidates = candidates;
  }
}

/** An object in the store does not match its recorded hash or size, or cannot be parsed. */
export class CorruptObjectError extends RepError {}

/** The repository was written by a newer format than this version of `rep` understands. */
export class FormatVersionError extends RepError {}

/** The storage backend could not be reached, or refused access. */
export class StorageError extends RepError {}

/** A write would overwrite or escape something it must not (checkout conflicts, path escapes). */
export class ConflictError extends RepError {}

/**
 * Another process owns the experiment: it is running elsewhere, or another process won the race
 * to start or resume it. `rep run` exits with {@link BUSY_EXIT_CODE} for it.
 */
export class BusyError extends RepError {}

/** The exit code of `rep run` when another process owns the experiment (see {@link BusyError}). */
export const BUSY_EXIT_CODE = 75;
