/**
 * An HTTP handler for the AWS SDK that fails a request attempt which stops making progress, so
 * the SDK retries it (or gives up) instead of waiting on a server that accepted the connection
 * and never answers.
 *
 * Progress is the request body moving (it is fed to the socket in slices, so a body that the
 * network stops taking counts as stalled) and, once the body is sent, the answer's headers
 * arriving (allowed a second more per 8 MiB sent, for the server to store the body). The time
 * limit applies to each stretch without progress, never to the whole request: a 64 MiB pack on a slow uplink takes as long as it needs. (A socket idle timeout
 * cannot do this here: under Deno's `node:http` it does not see the writes, and fires in the
 * middle of a slow upload.) Response bodies are watched by their readers (`streams.ts`), which
 * know when the consumer is the slow side.
 *
 * @module
 */
import { Readable, Transform } from "node:stream";
import type { HttpHandler, HttpHandlerOptions, HttpRequest, HttpResponse } from "../deps/s3.ts";
import { isNetworkError, STALL_TIMEOUT_MS, StallError } from "./retry.ts";

/**
 * How long Node's handler waits for `100 Continue` before sending a body anyway (the SDK asks for
 * it on bodies over 2 MiB): that wait is not a stall.
 */
const CONTINUE_WAIT_MS = 6_000;
/** Buffers are fed to the socket in slices of this size, so their progress shows. */
const SLICE = 256 * 1024;
/**
 * Once a body is sent, the server may take a while to store it before it answers (moto, in
 * Python, takes seconds for a 64 MiB streamed upload): the wait allowed grows by a second for
 * each this many bytes sent.
 */
const ANSWER_BYTES_PER_SECOND = 8 * 1024 * 1024;

type Options = HttpHandlerOptions;
// deno-lint-ignore no-explicit-any
type Inner = HttpHandler<any>;

/** Wraps an SDK HTTP handler (Node's or fetch's) with a stall timeout per attempt. */
export class StallGuard implements HttpHandler<Options> {
  readonly metadata = { handlerProtocol: "http/1.1" };
  readonly #inner: Inner;
  readonly #stallMs: number;

  constructor(inner: Inner, stallMs = STALL_TIMEOUT_MS) {
    this.#inner = inner;
    this.#stallMs = stallMs;
  }

  handle(request: HttpRequest, options: Options = {}): Promise<{ response: HttpResponse }> {
    const ctl = new AbortController();
    const outer = options.abortSignal as AbortSignal | undefined;
    const onOuter = () => ctl.abort(outer?.reason);
    if (outer?.aborted) onOuter();
    outer?.addEventListener("abort", onOuter, { once: true });
    const expects = Object.entries(request.headers ?? {}).some(([k, v]) =>
      k.toLowerCase() === "expect" && /100-continue/i.test(String(v))
    );
    let last = Date.now() + (expects ? CONTINUE_WAIT_MS : 0);
    let sent = 0;
    let allowed = this.#stallMs;
    const progress: Progress = {
      touch: (n) => {
        last = Math.max(last, Date.now());
        sent += n;
      },
      done: () => {
        last = Math.max(last, Date.now());
        allowed = this.#stallMs + (sent / ANSWER_BYTES_PER_SECOND) * 1000;
      },
    };
    // A copy for this attempt (the SDK may send the original again on a retry).
    const attempt: HttpRequest = Object.assign(
      Object.create(Object.getPrototypeOf(request)),
      request,
      { body: watched(request.body, progress) },
    );
    return new Promise((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const check = () => {
        const idle = Date.now() - last;
        if (idle < allowed) {
          timer = setTimeout(check, allowed - idle);
          return;
        }
        const e = new StallError(this.#stallMs);
        reject(e);
        ctl.abort(e);
      };
      timer = setTimeout(check, Math.max(0, last + this.#stallMs - Date.now()));
      this.#inner.handle(attempt as never, { ...options, abortSignal: ctl.signal as never }).then(
        resolve,
        (e) => reject(retryable(e)),
      ).finally(() => {
        clearTimeout(timer);
        outer?.removeEventListener("abort", onOuter);
      });
    });
  }

  updateHttpClientConfig(key: never, value: never): void {
    this.#inner.updateHttpClientConfig(key, value);
  }

  httpHandlerConfigs(): Options {
    return this.#inner.httpHandlerConfigs();
  }

  destroy(): void {
    this.#inner.destroy?.();
  }
}

/**
 * Mark a network failure retryable for the SDK: fetch reports a refused or reset connection as a
 * plain `TypeError`, which the SDK would not retry (Node's handler gives it a code it knows).
 */
function retryable(e: unknown): unknown {
  if (e instanceof Error && e.name !== "AbortError" && isNetworkError(e)) {
    Object.assign(e, { $retryable: {} });
  }
  return e;
}

/** What a request body reports as the handler consumes it. */
interface Progress {
  /** `n` more bytes went out. */
  touch(n: number): void;
  /** The whole body went out. */
  done(): void;
}

/** `body`, reporting its progress as the handler consumes it. */
function watched(body: unknown, progress: Progress): unknown {
  if (body instanceof Readable) {
    const t = new Transform({
      transform(chunk: Uint8Array, _enc, cb) {
        progress.touch(chunk.byteLength);
        cb(null, chunk);
      },
      flush(cb) {
        progress.done();
        cb();
      },
    });
    body.on("error", (e) => t.destroy(e));
    return body.pipe(t);
  }
  if (body instanceof Uint8Array && body.byteLength > SLICE) {
    return Readable.from(slices(body, progress), { objectMode: false });
  }
  if (body instanceof Uint8Array) progress.touch(body.byteLength);
  progress.done();
  return body;
}

function* slices(body: Uint8Array, progress: Progress): Generator<Uint8Array> {
  for (let o = 0; o < body.byteLength; o += SLICE) {
    const slice = body.subarray(o, o + SLICE);
    progress.touch(slice.byteLength);
    yield slice;
  }
  progress.done();
}
