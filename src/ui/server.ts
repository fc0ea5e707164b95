/**
 * The local viewer's HTTP handler: a single page (embedded, so the compiled binary needs no files
 * beside it) and a small JSON API over the repository. Read-only.
 *
 * @module
 */
import { NotFoundError, RepError, UsageError } from "../errors.ts";
import type { Repository } from "../repository.ts";
import { experimentSummary } from "../present/json.ts";
import { PAGE } from "./page.ts";

const JSON_HEADERS = {
  "content-type": "application/json; charset=utf-8",
  "cache-control": "no-store",
};

function json(v: unknown, status = 200): Response {
  return new Response(JSON.stringify(v), { status, headers: JSON_HEADERS });
}

/** A request handler serving the viewer for `repo`. */
export function viewer(repo: Repository): (req: Request) => Promise<Response> {
  return async (req) => {
    const url = new URL(req.url);
    const path = url.pathname;
    if (req.method !== "GET") return json({ error: "read-only" }, 405);
    try {
      if (path === "/" || path === "/index.html") {
        return new Response(PAGE, {
          headers: {
            "content-type": "text/html; charset=utf-8",
            "content-security-policy":
              "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'",
          },
        });
      }
      if (path === "/api/repository") return json({ url: repo.url });
      if (path === "/api/experiments") {
        const views = await repo.list();
        return json(views.map((v) => ({
          ...experimentSummary(v),
          metrics_by_step: v.checkpoints.map((c) => ({
            id: c.id,
            step: c.step,
            metrics: c.metrics,
          })),
        })));
      }
      let m = /^\/api\/experiments\/([0-9a-f]{1,32})$/.exec(path);
      if (m) {
        const r = await repo.resolve(m[1]!);
        const v = await repo.withFullRecord(r.experiment);
        return json({
          ...experimentSummary(v),
          record: v.record,
          checkpoints: v.checkpoints.map((c) => ({
            id: c.id,
            step: c.step,
            created: c.created,
            metrics: c.metrics,
            files: c.files,
            torn: c.torn,
          })),
        });
      }
      m = /^\/api\/checkpoints\/([0-9a-f]{32})\/files$/.exec(path);
      if (m) {
        const ck = await checkpoint(repo, m[1]!);
        const files = ck.files ? (await repo.tree(ck.files.tree)).files : [];
        return json(files.map((f) => ({ path: f.path, size: f.size, hash: f.hash })));
      }
      m = /^\/api\/checkpoints\/([0-9a-f]{32})\/file$/.exec(path);
      if (m) {
        const ck = await checkpoint(repo, m[1]!);
        const want = url.searchParams.get("path") ?? "";
        const files = ck.files ? (await repo.tree(ck.files.tree)).files : [];
        const entry = files.find((f) => f.path === want);
        if (!entry) throw new NotFoundError(`No file "${want}" in checkpoint ${m[1]!.slice(0, 7)}`);
        const name = want.split("/").pop()!.replace(/["\\\r\n]/g, "_");
        return new Response(repo.fileStream(entry), {
          headers: {
            "content-type": "application/octet-stream",
            "content-length": String(entry.size),
            "content-disposition": `attachment; filename="${name}"`,
          },
        });
      }
      return json({ error: `no such page: ${path}` }, 404);
    } catch (e) {
      const status = e instanceof NotFoundError ? 404 : e instanceof UsageError ? 400 : 500;
      const message = e instanceof RepError || e instanceof Error ? e.message : String(e);
      return json({ error: message }, status);
    }
  };
}

async function checkpoint(repo: Repository, id: string) {
  const r = await repo.resolve(id);
  if (r.kind !== "checkpoint") throw new NotFoundError(`${id.slice(0, 7)} is not a checkpoint`);
  return r.checkpoint;
}
