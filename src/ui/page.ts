/**
 * The viewer's page: an HTML shell, its script and its stylesheet, all embedded so the compiled
 * binary needs no files beside it and nothing comes from a CDN. Everything read from the
 * repository is inserted as text (`textContent`, attributes), never as HTML: a repository may be
 * hostile, and the Content-Security-Policy allows no inline script or style either.
 *
 * @module
 */
import { CORE_JS } from "./client/core.ts";
import { CHARTS_JS } from "./client/charts.ts";
import { TABLE_JS } from "./client/table.ts";
import { COMPARE_JS } from "./client/compare.ts";
import { EXPLORE_JS } from "./client/explore.ts";
import { DETAIL_JS } from "./client/detail.ts";
import { MAIN_JS } from "./client/main.ts";
import { STYLE_CSS } from "./client/style.ts";

/** The page served at `/`. */
export const PAGE: string = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>rep</title>
<link rel="stylesheet" href="/app.css">
<script src="/app.js" defer></script>
</head>
<body>
<header class="top">
  <span class="brand">rep</span>
  <nav id="nav"></nav>
  <span class="repo" id="repo"></span>
  <span id="live"></span>
</header>
<main id="view"></main>
</body>
</html>
`;

/** The page's script, served at `/app.js`. */
export const SCRIPT: string = [
  CORE_JS,
  CHARTS_JS,
  TABLE_JS,
  COMPARE_JS,
  EXPLORE_JS,
  DETAIL_JS,
  MAIN_JS,
].join("\n");

/** The page's stylesheet, served at `/app.css`. */
export const STYLE: string = STYLE_CSS;
