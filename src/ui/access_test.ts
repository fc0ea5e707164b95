import assert from "node:assert/strict";
import { checkAccess, cookieName, isLoopback } from "./access.ts";

const LOOPBACK = { port: 8321, loopbackOnly: true, token: null };
const TOKEN = "0123456789abcdef0123456789abcdef";
const REMOTE = { port: 8321, loopbackOnly: false, token: TOKEN };

function req(path: string, headers: Record<string, string>): Request {
  return new Request(`http://127.0.0.1:8321${path}`, { headers });
}

Deno.test("isLoopback() knows this machine's names and no others", () => {
  for (const h of ["localhost", "127.0.0.1", "127.3.2.1", "[::1]", "::1", "app.localhost"]) {
    assert.ok(isLoopback(h), h);
  }
  for (const h of ["0.0.0.0", "10.0.0.1", "localhost.evil.com", "127.0.0.1.nip.io", "evil"]) {
    assert.ok(!isLoopback(h), h);
  }
});

Deno.test("checkAccess() on the loopback: Host names the loopback, any port", () => {
  for (const host of ["127.0.0.1:8321", "localhost:9000", "[::1]:8321", "localhost"]) {
    assert.equal(checkAccess(req("/api/experiments", { host }), LOOPBACK), null, host);
  }
  for (const host of ["evil.example:8321", "localhost.evil.example", "[::2]:8321", "10.0.0.5"]) {
    assert.equal(checkAccess(req("/", { host }), LOOPBACK)?.status, 403, host);
  }
  assert.equal(checkAccess(req("/", {}), LOOPBACK)?.status, 400);
});

Deno.test("checkAccess() serves only the viewer's own origin", () => {
  const host = "127.0.0.1:8321";
  assert.equal(checkAccess(req("/", { host, origin: "http://127.0.0.1:8321" }), LOOPBACK), null);
  assert.equal(
    checkAccess(req("/", { host, origin: "http://localhost:8321" }), LOOPBACK)?.status,
    403,
  );
  assert.equal(checkAccess(req("/", { host, origin: "null" }), LOOPBACK)?.status, 403);
  // A link from another site may open the page, not the API.
  assert.equal(checkAccess(req("/", { host, "sec-fetch-site": "cross-site" }), LOOPBACK), null);
  for (const site of ["cross-site", "same-site"]) {
    const r = checkAccess(
      req("/api/checkpoints/ab/file", { host, "sec-fetch-site": site }),
      LOOPBACK,
    );
    assert.equal(r?.status, 403, site);
  }
  for (const site of ["same-origin", "none"]) {
    assert.equal(checkAccess(req("/api/x", { host, "sec-fetch-site": site }), LOOPBACK), null);
  }
});

Deno.test("checkAccess() with a token: the URL's token becomes a cookie, then the cookie or a bearer", () => {
  const host = "gpu1:8321";
  assert.equal(checkAccess(req("/api/experiments", { host }), REMOTE)?.status, 401);
  assert.equal(checkAccess(req("/?token=" + "f".repeat(32), { host }), REMOTE)?.status, 401);
  assert.equal(checkAccess(req("/?token=short", { host }), REMOTE)?.status, 401);
  const r = checkAccess(req("//evil.example/?token=" + TOKEN, { host }), REMOTE)!;
  assert.equal(r.status, 303);
  assert.equal(r.headers.get("location"), "/"); // never off-site
  assert.equal(
    r.headers.get("set-cookie"),
    `${cookieName(8321)}=${TOKEN}; Path=/; HttpOnly; SameSite=Strict`,
  );
  const cookie = `other=1; ${cookieName(8321)}=${TOKEN}`;
  assert.equal(checkAccess(req("/api/experiments", { host, cookie }), REMOTE), null);
  assert.equal(
    checkAccess(req("/api/experiments", { host, cookie: `${cookieName(9999)}=${TOKEN}` }), REMOTE)
      ?.status,
    401,
  );
  const authorization = `Bearer ${TOKEN}`;
  assert.equal(checkAccess(req("/api/experiments", { host, authorization }), REMOTE), null);
  // The token does not lift the origin checks.
  const other = { host, cookie, origin: "http://evil.example" };
  assert.equal(checkAccess(req("/api/experiments", other), REMOTE)?.status, 403);
});
