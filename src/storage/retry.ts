/**
 * How the cloud drivers (S3, GCS) retry, time out and name network failures: one policy for both.
 *
 * - A request is tried at most {@link MAX_ATTEMPTS} times, with exponential backoff of about
 *   1, 2, 4, 8 s (jittered down by up to half), and no retry starts later than
 *   {@link RETRY_WINDOW_MS} after the first attempt. A server that is away for a few seconds (a
 *   restart, a failover) is ridden out; a dead one fails the request within about 15 s.
 * - An attempt that makes no progress for {@link STALL_TIMEOUT_MS} (no connection, no answer, a
 *   request or response body that stops moving) fails with a {@link StallError} and is retried
 *   like a dropped connection. Progress is what is measured, not total time: a large body on a
 *   slow link takes as long as it needs.
 *
 * So an endpoint that accepts connections and never answers fails after two stalled attempts,
 * about 11 s, and one that refuses connections after four or five quick ones, 8–15 s.
 *
 * @module
 */
import { StorageError } from "../errors.ts";

/** Attempts per request, the first included. */
export const MAX_ATTEMPTS = 5;
/** An attempt that makes no progress for this long has stalled. */
export const STALL_TIMEOUT_MS = 5_000;
/** No retry starts later than this after a request's first attempt. */
export const RETRY_WINDOW_MS = 10_000;

/** No progress for {@link STALL_TIMEOUT_MS}: the server accepted the request but stopped answering. */
export class StallError extends Error {
  /** Node's code for a timed-out socket, which the SDKs' retry logic treats as transient. */
  readonly code = "ETIMEDOUT";
  constructor(ms = STALL_TIMEOUT_MS) {
    super(`no answer for ${ms / 1000} s`);
    this.name = "TimeoutError";
  }
}

/** The delay before retry number `attempt` (1, 2, …): about 1, 2, 4, 8 s, jittered down by <50%. */
export function backoff(attempt: number): number {
  return Math.min(8_000, 1_000 * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
}

/**
 * The delay before retry number `retry` (1 for the second attempt) of a request first tried at
 * `startedAt` (ms since the epoch), or null when it should give up: out of attempts, or the retry
 * would start after the retry window.
 *
 * @example Give up once the window is spent
 * ```ts
 * import { retryDelay } from "./retry.ts";
 * const now = Date.now();
 * if (retryDelay(1, now, 5, now) === null) throw new Error("the first retry is allowed");
 * if (retryDelay(1, now - 20_000, 5, now) !== null) throw new Error("too late");
 * if (retryDelay(5, now, 5, now) !== null) throw new Error("out of attempts");
 * ```
 */
export function retryDelay(
  retry: number,
  startedAt: number,
  maxAttempts = MAX_ATTEMPTS,
  now = Date.now(),
): number | null {
  if (retry >= maxAttempts) return null;
  const delay = backoff(retry);
  return now + delay - startedAt > RETRY_WINDOW_MS ? null : delay;
}

/** Resolve after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ECONNABORTED",
  "ERR_STREAM_PREMATURE_CLOSE",
]);
const NETWORK_MESSAGE =
  /ECONNREFUSED|ECONNRESET|connection refused|connection reset|socket hang up|error sending request|fetch failed|premature close|network error|timed? ?out|unexpected end/i;

/** Whether `e` (or an error in its `cause` chain) is a network failure rather than an answer. */
export function isNetworkError(e: unknown): boolean {
  for (let cur = e, depth = 0; cur && depth < 5; depth++) {
    const o = cur as { code?: unknown; name?: unknown; message?: unknown; cause?: unknown };
    if (typeof o.code === "string" && NETWORK_CODES.has(o.code)) return true;
    if (o.name === "TimeoutError" || o.name === "ConnectionRefused") return true;
    if (typeof o.message === "string" && NETWORK_MESSAGE.test(o.message)) return true;
    cur = o.cause;
  }
  return false;
}

/** Whether `e` (or its cause) is a stall or timeout: connected, or connecting, but no answer. */
export function isStall(e: unknown): boolean {
  for (let cur = e, depth = 0; cur && depth < 5; depth++) {
    const o = cur as { code?: unknown; name?: unknown; cause?: unknown };
    if (cur instanceof StallError || o.name === "TimeoutError" || o.code === "ETIMEDOUT") {
      return true;
    }
    cur = o.cause;
  }
  return false;
}

/** What an unreachable service is called in messages, and where its endpoint is configured. */
export interface Service {
  /** `S3` or `Cloud Storage`. */
  name: string;
  /** The custom endpoint in use, if any. */
  endpoint: string | undefined;
  /** Where that endpoint is configured, for the hint (e.g. `AWS_ENDPOINT_URL_S3`). */
  endpointSetting: string;
}

/**
 * The error for a request that failed for network reasons after its retries: which service,
 * which endpoint, what was being done, and whether it refused or stopped answering.
 */
export function unreachable(
  service: Service,
  what: string,
  where: string,
  cause: unknown,
  attempts?: number,
  elapsedMs?: number,
): StorageError {
  const at = service.endpoint ? ` at ${service.endpoint}` : "";
  const tries = attempts && attempts > 1
    ? ` (${attempts} attempts${
      elapsedMs !== undefined ? ` in ${Math.round(elapsedMs / 1000)} s` : ""
    })`
    : "";
  const why = isStall(cause)
    ? `it stopped answering: ${STALL_TIMEOUT_MS / 1000} s without progress`
    : errorText(cause);
  return new StorageError(
    `Cannot reach ${service.name}${at} to ${what} ${where}: ${why}${tries}`,
    "Check the network connection and that the service is up" +
      (service.endpoint ? ` (the endpoint comes from ${service.endpointSetting})` : ""),
    { cause },
  );
}

/** An error's message, or its name when it has none. */
export function errorText(e: unknown): string {
  if (e instanceof Error) return e.message || e.name;
  return String(e);
}
