/**
 * The viewer's HTTP handler: the page (embedded, so the compiled binary needs no files beside it)
 * and a read-only JSON API over the repository, behind the checks of ./access.ts.
 *
 * @module
 */
import { AmbiguousIdError, NotFoundError, RepError, UsageError } from "../errors.ts";
import type { ExperimentView, Repository } from "../repository.ts";
import type { FileEntry } from "../format/records.ts";
import { attemptLogPrefix } from "../format/layout.ts";
import { VERSION } from "../version.ts";
import { diffItems, diffJson, resolveItems } from "../present/diff.ts";
import { type AccessOptions, checkAccess } from "./access.ts";
import {
  attemptCount,
  detailJson,
  experimentRow,
  fileJson,
  filterIds,
  idList,
  missingFiles,
  readLog,
  seriesJson,
  statsJson,
} from "./api.ts";
import { PAGE, SCRIPT, STYLE } from "./page.ts";

/** Headers on every response: nothing may frame, sniff or leak the viewer. */
const COMMON = {
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cache-control": "no-store",
};

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
  "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

function json(v: unknown, status = 200): Response {
  return new Response(JSON.stringify(v), {
    status,
    headers: { ...COMMON, "content-type": "application/json; charset=utf-8" },
  });
}

function asset(body: string, type: string): Response {
  return new Response(body, {
    headers: { ...COMMON, "content-type": type, "content-security-policy": CSP },
  });
}

function hex(b: number): string {
  return b.toString(16).padStart(2, "0");
}

/** `attachment; filename=…` that survives any file name. */
function disposition(path: string): string {
  const name = path.split("/").pop() ?? "file";
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, "_");
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

function download(body: ReadableStream<Uint8Array>, size: number, path: string): Response {
  return new Response(body, {
    headers: {
      ...COMMON,
      "content-type": "application/octet-stream",
      "content-length": String(size),
      "content-disposition": disposition(path),
    },
  });
}

/** Options of {@link viewer}. */
export interface ViewerOptions {
  /** Who may ask (see ./access.ts); omitted: no checks (tests of the API alone). */
  access?: AccessOptions;
}

/** A request handler serving the viewer for `repo`. */
export function viewer(
  repo: Repository,
  options: ViewerOptions = {},
): (req: Request) => Promise<Response> {
  // One listing serves the requests of a page load (the table, then series and comparisons).
  let cached: { at: number; views: Promise<ExperimentView[]> } | null = null;
  const views = () => {
    if (!cached || Date.now() - cached.at > 1000) {
      const p = repo.list();
      cached = { at: Date.now(), views: p };
      p.catch(() => (cached = null));
    }
    return cached.views;
  };
  const find = async (id: string) => {
    const r = await repo.resolve(id, await views());
    return r;
  };
  const experiment = async (id: string) => {
    const r = await find(id);
    if (r.kind !== "experiment") {
      throw new NotFoundError(`${id.slice(0, 7)} is a checkpoint, not an experiment`);
    }
    return r.experiment;
  };
  const checkpoint = async (id: string) => {
    const r = await find(id);
    if (r.kind !== "checkpoint") {
      throw new NotFoundError(`${id.slice(0, 7)} is an experiment, not a checkpoint`);
    }
    return r;
  };

  return async (req) => {
    if (options.access) {
      const refused = checkAccess(req, options.access);
      if (refused) return refused;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      return json({ error: "The viewer is read-only" }, 405);
    }
    const url = new URL(req.url);
    const path = url.pathname;
    const q = url.searchParams;
    try {
      if (path === "/" || path === "/index.html") return asset(PAGE, "text/html; charset=utf-8");
      if (path === "/app.js") return asset(SCRIPT, "text/javascript; charset=utf-8");
      if (path === "/app.css") return asset(STYLE, "text/css; charset=utf-8");
      if (path === "/api/repository") {
        return json({ url: repo.url, format: await repo.checkFormat(), version: VERSION });
      }
      if (path === "/api/experiments") {
        const now = Date.now();
        const list = JSON.stringify((await views()).map((v) => experimentRow(v, now)));
        // The page polls this; an unchanged list (nothing running) costs a 304, not megabytes.
        const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(list));
        const tag = `"${Array.from(new Uint8Array(digest).subarray(0, 16), hex).join("")}"`;
        const headers = { ...COMMON, "cache-control": "no-cache", etag: tag };
        if (req.headers.get("if-none-match") === tag) {
          return new Response(null, { status: 304, headers });
        }
        return new Response(`{"now":"${new Date(now).toISOString()}","experiments":${list}}`, {
          headers: { ...headers, "content-type": "application/json; charset=utf-8" },
        });
      }
      if (path === "/api/filter") {
        return json({ ids: filterIds(await views(), q.get("q") ?? "") });
      }
      if (path === "/api/series") {
        const picked = await Promise.all(idList(q.get("ids")).map(experiment));
        return json({ series: seriesJson(picked) });
      }
      if (path === "/api/stats") return json({ stats: statsJson(await views()) });
      if (path === "/api/compare") {
        const items = await resolveItems(repo, idList(q.get("ids")));
        return json(diffJson(await diffItems(repo, items, { code: q.get("code") !== "0" })));
      }
      // An experiment by id, id prefix or name (names: letters, digits, . _ -).
      let m = /^\/api\/experiments\/([0-9A-Za-z][0-9A-Za-z._-]{0,99})(\/[a-z/]+)?$/.exec(path);
      if (m) {
        const v = await experiment(m[1]!);
        const sub = m[2] ?? "";
        if (sub === "") return json(detailJson(await repo.withFullRecord(v), Date.now()));
        if (sub === "/missing") return json({ missing: await missingFiles(repo, v) });
        if (sub === "/logs") return await logs(repo, v, q);
        if (sub === "/code") {
          const files = v.record.code ? (await repo.tree(v.record.code.tree)).files : [];
          return json(fileJson(files));
        }
        if (sub === "/code/file") {
          const files = v.record.code ? (await repo.tree(v.record.code.tree)).files : [];
          return file(repo, files, q.get("path") ?? "", `the code of ${v.id.slice(0, 7)}`);
        }
      }
      m = /^\/api\/checkpoints\/([0-9a-f]{1,32})\/(files|file)$/.exec(path);
      if (m) {
        const hit = await checkpoint(m[1]!);
        const ck = hit.checkpoint;
        // The full record: format 1 paths are presented under provenance.output.
        const exp = (await repo.withFullRecord(hit.experiment)).record;
        const files = await repo.checkpointFiles(exp, ck);
        if (m[2] === "files") return json(fileJson(files));
        return file(repo, files, q.get("path") ?? "", `checkpoint ${ck.id.slice(0, 7)}`);
      }
      return json({ error: `No such page: ${path}` }, 404);
    } catch (e) {
      const status = e instanceof UsageError
        ? 400
        : e instanceof AmbiguousIdError
        ? 409
        : e instanceof NotFoundError
        ? 404
        : 500;
      const message = e instanceof Error ? e.message : String(e);
      const hint = e instanceof RepError ? e.hint ?? null : null;
      return json({ error: message, hint }, status);
    }
  };
}

function file(repo: Repository, files: FileEntry[], want: string, where: string): Response {
  const entry = files.find((f) => f.path === want);
  if (!entry) throw new NotFoundError(`No file "${want}" in ${where}`);
  return download(repo.fileStream(entry), entry.size, want);
}

/** The whole log of one attempt as one download, streamed segment by segment. */
async function logDownload(
  repo: Repository,
  v: ExperimentView,
  attempt: number,
  attempts: number,
): Promise<Response> {
  const segments = await Array.fromAsync(repo.store.list(attemptLogPrefix(v.id, attempt)));
  const size = segments.reduce((n, s) => n + s.size, 0);
  let i = 0;
  let current: ReadableStreamDefaultReader<Uint8Array> | null = null;
  const body = new ReadableStream<Uint8Array>({
    async pull(ctl) {
      while (true) {
        if (!current) {
          const seg = segments[i++];
          if (!seg) return ctl.close();
          current = (await repo.store.get(seg.key)).getReader();
        }
        const { value, done } = await current.read();
        if (done) current = null;
        else return ctl.enqueue(value);
      }
    },
    async cancel() {
      await current?.cancel();
    },
  });
  const name = attempts > 1
    ? `${v.id.slice(0, 7)}-attempt${attempt}.log`
    : `${v.id.slice(0, 7)}.log`;
  return download(body, size, name);
}

/**
 * `/api/experiments/<id>/logs`: a slice of one attempt's output (`attempt`, default the newest),
 * from a byte offset (`from`) or the last bytes (`tail`), or all of it (`download=1`).
 */
async function logs(repo: Repository, v: ExperimentView, q: URLSearchParams): Promise<Response> {
  const number = (name: string, what = "a byte offset", min = 0) => {
    const text = q.get(name);
    if (text === null) return undefined;
    const n = Number(text);
    if (!Number.isSafeInteger(n) || n < min) {
      throw new UsageError(`Invalid ${name}="${text}": expected ${what}`);
    }
    return n;
  };
  const attempts = attemptCount(v);
  const attempt = number("attempt", `an attempt number from 1 to ${attempts}`, 1) ?? attempts;
  if (attempt > attempts) {
    throw new NotFoundError(
      `Experiment ${v.id.slice(0, 7)} has ${attempts} attempt${
        attempts > 1 ? "s" : ""
      }, not ${attempt}`,
    );
  }
  if (q.get("download") === "1") return await logDownload(repo, v, attempt, attempts);
  const from = number("from");
  const tail = number("tail");
  const slice = await readLog(repo, v.id, {
    attempt,
    ...(from !== undefined ? { from } : {}),
    ...(tail !== undefined ? { tail } : {}),
  });
  return new Response(slice.bytes, {
    headers: {
      ...COMMON,
      "content-type": "text/plain; charset=utf-8",
      "x-log-offset": String(slice.offset),
      "x-log-size": String(slice.size),
      "x-log-attempt": String(attempt),
      "x-log-attempts": String(attempts),
    },
  });
}
