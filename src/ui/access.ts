/**
 * Who may use the viewer. It serves full records and weight downloads, so:
 *
 * - **Host**: on a loopback address, only requests whose `Host` names the loopback (`localhost`,
 *   `127.0.0.1`, `[::1]`, any port: SSH tunnels keep working) are served. A page on another site
 *   that makes its own name resolve to 127.0.0.1 (DNS rebinding) sends its own name and is refused.
 * - **Origin**: a request that carries an `Origin` must come from the viewer's own origin, and the
 *   API answers only same-origin requests (`Sec-Fetch-Site`), so other sites cannot read it or
 *   embed its files.
 * - **Token**: when it listens beyond the loopback (or with `--token`), every request must carry
 *   the token printed at start: once as `?token=…` in the URL, which sets an HttpOnly,
 *   SameSite=Strict cookie and redirects to the bare URL, or as `Authorization: Bearer …`.
 *
 * @module
 */
import { timingSafeEqual } from "node:crypto";

/** How the viewer checks requests. */
export interface AccessOptions {
  /** The port it listens on (names its cookie, so two viewers on one host keep theirs apart). */
  port: number;
  /** Refuse `Host` headers that are not the loopback (true when it listens on the loopback). */
  loopbackOnly: boolean;
  /** The token every request must carry, or null for none. */
  token: string | null;
}

const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]", "::1"]);

/** True for the addresses of this machine only. */
export function isLoopback(hostname: string): boolean {
  const h = hostname.toLowerCase();
  return LOOPBACK.has(h) || /^127\.\d+\.\d+\.\d+$/.test(h) || h.endsWith(".localhost");
}

/** A random token of 32 hex characters (128 bits). */
export function newToken(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** The host name of a `Host` header value (`name:port`, `[v6]:port`). */
function hostName(host: string): string {
  const v6 = /^(\[[^\]]*\])(?::\d+)?$/.exec(host);
  if (v6) return v6[1]!;
  return host.replace(/:\d+$/, "");
}

function sameSecret(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function cookie(req: Request, name: string): string | null {
  for (const part of (req.headers.get("cookie") ?? "").split(";")) {
    const i = part.indexOf("=");
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return null;
}

function refuse(status: number, message: string): Response {
  return new Response(message + "\n", {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" },
  });
}

/**
 * Check a request: null when it may be served, else the response that refuses it (or, for the
 * first visit with the token in the URL, the redirect that trades it for a cookie).
 */
export function checkAccess(req: Request, options: AccessOptions): Response | null {
  const url = new URL(req.url);
  const host = req.headers.get("host");
  if (!host) return refuse(400, "Missing Host header");
  if (options.loopbackOnly && !isLoopback(hostName(host))) {
    return refuse(
      403,
      `Refused: this viewer answers only to localhost, 127.0.0.1 or [::1], not "${host}". ` +
        "Open it by one of those names (DNS rebinding protection)",
    );
  }
  const origin = req.headers.get("origin");
  if (origin !== null && origin !== `http://${host}` && origin !== `https://${host}`) {
    return refuse(403, `Refused: a request from another origin (${origin})`);
  }
  const site = req.headers.get("sec-fetch-site");
  // "none": the user typed or bookmarked the URL; other sites' requests say cross- or same-site.
  if (
    url.pathname.startsWith("/api/") && site !== null && site !== "same-origin" && site !== "none"
  ) {
    return refuse(403, "Refused: the API answers only the viewer's own page");
  }
  if (options.token === null) return null;
  const name = cookieName(options.port);
  const given = url.searchParams.get("token");
  if (given !== null && sameSecret(given, options.token)) {
    return new Response(null, {
      status: 303,
      headers: {
        // Always the page itself: a path from the request could redirect off-site (`//host`).
        location: "/",
        "set-cookie": `${name}=${options.token}; Path=/; HttpOnly; SameSite=Strict`,
        "cache-control": "no-store",
        "referrer-policy": "no-referrer",
      },
    });
  }
  const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.get("authorization") ?? "")?.[1];
  const held = cookie(req, name) ?? bearer ?? null;
  if (held !== null && sameSecret(held, options.token)) return null;
  return refuse(
    401,
    "This viewer needs its token: open the URL that `rep ui` printed (it ends with ?token=…)",
  );
}

/** The name of the cookie that holds the token. */
export function cookieName(port: number): string {
  return `rep_ui_${port}`;
}
