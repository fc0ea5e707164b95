/**
 * Which files make up a code snapshot. In a git work tree: tracked files plus untracked files that
 * are not ignored (`git ls-files --cached --others --exclude-standard`), so dirty and untracked work
 * is captured. Elsewhere: a walk of the folder. Either way `.repignore` (gitignore-style patterns),
 * the always-excluded names (`.git`, `.rep`, virtualenvs, caches), extra excluded paths (the run's
 * output folder) and files over the size limit are left out.
 *
 * @module
 */
import { join, relative, resolve } from "node:path";
import { ALWAYS_EXCLUDED, walkFiles } from "./walk.ts";
import { cacheDir } from "./util.ts";

/** Files larger than this are left out of code snapshots (they are data, not code). */
export const MAX_CODE_FILE = 50 * 1024 * 1024;

/**
 * Files that hold credentials by convention; never part of a code snapshot, even when tracked by
 * git: `.env` and `.env.*` (but not `.env.example`/`.env.sample`/`.env.template`), `.envrc`,
 * `.netrc`, `.pypirc`, `.npmrc`, `.git-credentials`, private keys (`*.pem`, `*.key`, `id_rsa*`,
 * `id_ed25519*`, `id_ecdsa*`), and cloud credential files (`credentials`, `credentials.json`,
 * `service-account*.json`, `*.p12`).
 */
export function isSecretFile(rel: string): boolean {
  const name = rel.slice(rel.lastIndexOf("/") + 1).toLowerCase();
  if (
    name === ".env" || (name.startsWith(".env.") && !/\.(example|sample|template|dist)$/.test(name))
  ) {
    return true;
  }
  return [
    ".envrc",
    ".netrc",
    ".pypirc",
    ".npmrc",
    ".git-credentials",
    "credentials",
    "credentials.json",
  ]
    .includes(name) ||
    /\.(pem|key|p12|pfx)$/.test(name) || /^id_(rsa|ed25519|ecdsa|dsa)/.test(name) ||
    /^service-account.*\.json$/.test(name);
}

/** Result of {@link listCodeFiles}. */
export interface CodeFiles {
  root: string;
  files: string[];
  /** Files left out because they are larger than {@link MAX_CODE_FILE}. */
  tooLarge: string[];
}

/** Compile gitignore-style patterns into a matcher of relative POSIX paths. */
export function ignoreMatcher(patterns: string[]): (rel: string, isDir: boolean) => boolean {
  const rules: { re: RegExp; negate: boolean; dirOnly: boolean }[] = [];
  for (let raw of patterns) {
    raw = raw.trim();
    if (!raw || raw.startsWith("#")) continue;
    let negate = false;
    if (raw.startsWith("!")) {
      negate = true;
      raw = raw.slice(1);
    }
    let dirOnly = false;
    if (raw.endsWith("/")) {
      dirOnly = true;
      raw = raw.slice(0, -1);
    }
    const anchored = raw.includes("/");
    raw = raw.replace(/^\//, "");
    let re = "";
    for (let i = 0; i < raw.length; i++) {
      const c = raw[i]!;
      if (c === "*" && raw[i + 1] === "*") {
        re += ".*";
        i++;
        if (raw[i + 1] === "/") i++;
      } else if (c === "*") re += "[^/]*";
      else if (c === "?") re += "[^/]";
      else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
    }
    rules.push({
      re: new RegExp(anchored ? `^${re}(?<rest>/.*)?$` : `(^|/)${re}(?<rest>/.*)?$`),
      negate,
      dirOnly,
    });
  }
  return (rel, isDir) => {
    let ignored = false;
    for (const r of rules) {
      const m = r.re.exec(rel);
      // A folder pattern (`build/`) matches the folder itself or anything below it.
      if (m && (!r.dirOnly || isDir || m.groups?.rest)) ignored = !r.negate;
    }
    return ignored;
  };
}

async function gitFiles(root: string): Promise<string[] | null> {
  try {
    const out = await new Deno.Command("git", {
      args: ["ls-files", "-z", "--cached", "--others", "--exclude-standard"],
      cwd: root,
      stdout: "piped",
      stderr: "null",
    }).output();
    if (!out.success) return null;
    return new TextDecoder().decode(out.stdout).split("\0").filter((s) => s.length > 0);
  } catch {
    return null;
  }
}

/**
 * List the files of a code snapshot of `root`, leaving out `exclude` (absolute or relative paths:
 * the output folder, the repository folder) and rep's cache folder.
 */
export async function listCodeFiles(root: string, exclude: string[] = []): Promise<CodeFiles> {
  root = resolve(root);
  exclude = [...exclude, cacheDir()];
  let patterns: string[] = [];
  try {
    patterns = (await Deno.readTextFile(join(root, ".repignore"))).split("\n");
  } catch {
    // no .repignore
  }
  const excluded = exclude.map((p) => relative(root, resolve(root, p))).filter((p) =>
    p && !p.startsWith("..")
  );
  const ignore = ignoreMatcher(patterns);
  const skip = (rel: string, isDir: boolean) =>
    ignore(rel, isDir) || excluded.some((x) => rel === x || rel.startsWith(x + "/"));
  let files = await gitFiles(root);
  if (files) {
    files = files.filter((f) =>
      !f.split("/").some((seg) => ALWAYS_EXCLUDED.has(seg)) && !skip(f, false) &&
      !f.split("/").slice(0, -1).some((_, i, a) => skip(a.slice(0, i + 1).join("/"), true))
    );
  } else {
    files = await walkFiles(root, skip);
  }
  const tooLarge: string[] = [];
  const kept: string[] = [];
  for (const f of files.filter((f) => !isSecretFile(f))) {
    let st: Deno.FileInfo | null = null;
    try {
      st = Deno.lstatSync(join(root, f)); // sync: thousands of tiny calls, no waiting between
    } catch {
      // vanished
    }
    if (!st || !st.isFile) continue;
    if (st.size > MAX_CODE_FILE) tooLarge.push(f);
    else kept.push(f);
  }
  return { root, files: kept.sort(), tooLarge };
}
