/**
 * `rep run`: run a command unchanged, record it as an experiment, and make checkpoints while it
 * trains. Each complete line of the metrics JSONL file makes one checkpoint holding that line's
 * metrics and the output folder's files as they were when the line was written.
 *
 * How "as they were" is kept exact: while rep reads new metrics lines, the command's process group
 * is frozen (SIGSTOP/SIGCONT) and an ordered log of file events (inotify, with a sync barrier) says
 * which files changed after the line was written. Those are listed in the checkpoint's `torn` field
 * instead of being stored with the wrong bytes; the others are read while nothing can change them.
 * Changed files are also read ahead of time (chunked into the outbox) to keep the freeze short.
 *
 * @module
 */
import { join, relative, resolve } from "node:path";
import type { ParamValue, PrimaryMetric, Tree } from "../format/records.ts";
import { TREE_FORMAT } from "../format/records.ts";
import type { Repository } from "../repository.ts";
import { Recorder } from "../writer/recorder.ts";
import { LocalStore } from "../storage/local.ts";
import { listCodeFiles } from "../code.ts";
import { walkFiles } from "../walk.ts";
import { ChangeLog, isSyncFile } from "./watch.ts";
import { type MetricsEvent, MetricsTail } from "./metrics.ts";
import { ScalarParser } from "./scalars.ts";
import {
  collectProvenance,
  isSecretName,
  REDACTED,
  redactParam,
  redactValue,
} from "./provenance.ts";
import { parseCommandParams } from "./params.ts";
import { formatBytes } from "../util.ts";
import { UsageError } from "../errors.ts";
import { logKey, malformedKey } from "../format/layout.ts";

/** Options of {@link runExperiment}. */
export interface RunOptions {
  repo: Repository;
  command: string[];
  /** Working directory of the command. */
  cwd: string;
  /** The watched output folder (created when missing). */
  output: string;
  /** The metrics JSONL file. */
  metrics: string;
  primaryMetric: PrimaryMetric | null;
  /** Params given with -p; they override params read from the command. */
  params: Record<string, ParamValue>;
  tags: string[];
  note: string | null;
  /** Skip the code snapshot. */
  noCode: boolean;
  /** Also read `key: value` scalars from the command's stdout. */
  stdoutMetrics: boolean;
  /** Seconds a changed file must stay unchanged before it is checkpointed without a metrics line. */
  settle?: number;
  /** Messages for the user (stderr). */
  say: (text: string) => void;
  /** Where the command's stdout and stderr go. */
  stdout: (bytes: Uint8Array) => void;
  stderr: (bytes: Uint8Array) => void;
  /** Show upload progress (stderr is a terminal). */
  progress?: boolean;
  /** Environment of the command (defaults to this process's). */
  env?: Record<string, string>;
}

/** Result of a run. */
export interface RunResult {
  experimentId: string;
  exitCode: number;
  status: "succeeded" | "failed" | "stopped";
  checkpoints: number;
  /** True when uploads were left pending (second Ctrl-C or storage down). */
  pendingLeft: boolean;
}

const SIGNALS: Deno.Signal[] = ["SIGINT", "SIGTERM", "SIGHUP"];
const SIGNUM: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };
const POLL_MS = 500;
const LOG_SEGMENT = 4 * 1024 * 1024;

/**
 * Find `program` the way the OS will when it runs it: a path (with a `/`) relative to `cwd`, else
 * the first executable file of that name in PATH. Null when there is none.
 */
export async function findProgram(
  program: string,
  cwd: string,
  path: string,
): Promise<string | null> {
  const isExec = async (p: string) => {
    try {
      const st = await Deno.stat(p);
      return st.isFile && (Deno.build.os === "windows" || ((st.mode ?? 0o755) & 0o111) !== 0);
    } catch {
      return false;
    }
  };
  if (program.includes("/")) {
    const p = resolve(cwd, program);
    return (await isExec(p)) ? p : null;
  }
  for (const dir of path.split(":")) {
    const p = join(resolve(cwd, dir || "."), program);
    if (await isExec(p)) return p;
  }
  return null;
}

/** Record `command` as an experiment and run it. */
export async function runExperiment(opts: RunOptions): Promise<RunResult> {
  // A mistyped command is a usage error, not an experiment.
  const env0 = opts.env ?? Deno.env.toObject();
  if (!(await findProgram(opts.command[0]!, opts.cwd, env0.PATH ?? ""))) {
    throw new UsageError(
      `Cannot run "${opts.command[0]}": command not found`,
      opts.command[0]!.includes("/")
        ? "Check the path, and that the file is executable"
        : "Check the command name and your PATH",
    );
  }
  const output = resolve(opts.cwd, opts.output);
  const metricsPath = resolve(opts.cwd, opts.metrics);
  await Deno.mkdir(output, { recursive: true });
  await Deno.mkdir(join(metricsPath, ".."), { recursive: true });
  const env = opts.env ?? Deno.env.toObject();

  // Params: the command's own arguments, then -p (which wins); secrets are redacted.
  const params: Record<string, ParamValue> = {};
  for (const [k, v] of Object.entries({ ...parseCommandParams(opts.command), ...opts.params })) {
    params[k] = redactParam(k, v);
  }
  const command = redactCommand(opts.command);

  // Provenance and the code snapshot's file list, in parallel.
  const [prov, code] = await Promise.all([
    collectProvenance({ cwd: opts.cwd, command: opts.command, env }),
    opts.noCode ? null : listCodeFiles(opts.cwd, [output, metricsPath]),
  ]);
  if (code?.tooLarge.length) {
    opts.say(
      `rep: left ${code.tooLarge.length} large file(s) out of the code snapshot: ${
        code.tooLarge.slice(0, 3).join(", ")
      }${code.tooLarge.length > 3 ? ", …" : ""}\n`,
    );
  }
  const git = prov.git;
  let storageDown = false;
  const rec = await Recorder.start(opts.repo, {
    params,
    command,
    cwd: opts.cwd,
    code: code ? { root: code.root, files: code.files } : null,
    git: git
      ? { commit: git.commit, branch: git.branch, dirty: git.dirty, remote: git.remote }
      : null,
    tags: opts.tags,
    note: opts.note,
    primaryMetric: opts.primaryMetric,
    provenance: {
      platform: prov.platform,
      cpu: prov.cpu,
      memory_bytes: prov.memoryBytes,
      gpu: prov.gpu,
      python: prov.python,
      env: prov.env,
      git_diff: git?.diff ?? null,
      git_diff_truncated: git?.diffTruncated ?? false,
      git_untracked: git?.untracked ?? [],
      output: relative(opts.cwd, output) || ".",
      metrics: relative(opts.cwd, metricsPath),
      warnings: prov.warnings,
    },
    onStorageError: (e) => {
      if (e && !storageDown) {
        opts.say(`rep: storage is failing (${e.message}); checkpoints are queued on local disk\n`);
      } else if (!e && storageDown) {
        opts.say("rep: storage is back; uploading queued checkpoints\n");
      }
      storageDown = e !== null;
    },
  });
  const id = rec.record.id;
  opts.say(`rep: experiment ${id.slice(0, 7)} in ${opts.repo.url}\n`);

  // The metrics file: lines already there belong to an earlier run.
  let metricsOffset = 0;
  try {
    metricsOffset = (await Deno.stat(metricsPath)).size;
    if (metricsOffset > 0) {
      opts.say(
        `rep: ${
          relative(opts.cwd, metricsPath)
        } already has ${metricsOffset} bytes; reading only new lines\n`,
      );
    }
  } catch {
    // not there yet
  }
  const tail = new MetricsTail();
  const scalars = opts.stdoutMetrics ? new ScalarParser() : null;

  let childRunning = true;

  // State of the output folder.
  let lastTreeKey: string | null = null;
  let lastStep: number | null = null;
  let sawMetrics = false;
  let checkpoints = 0;
  let changedSince = 0; // time of the first change not yet in a checkpoint, 0 when none
  const settleMs = (opts.settle ?? 2) * 1000;
  const metricsRel = relative(output, metricsPath);
  const exclude = (rel: string) =>
    rel === metricsRel || isSyncFile(rel) || rel.endsWith(".rep-tmp");
  const debug = env.REP_DEBUG
    ? (m: string) => opts.say(`[rep ${Date.now() % 100000}] ${m}\n`)
    : null;

  async function scanOutput(): Promise<Map<string, Deno.FileInfo>> {
    const files = await walkFiles(output, (rel) => exclude(rel));
    const out = new Map<string, Deno.FileInfo>();
    for (const f of files) {
      let st: Deno.FileInfo | null = null;
      try {
        st = Deno.statSync(join(output, f)); // sync: many tiny calls, no waiting between them
      } catch {
        // vanished
      }
      if (st?.isFile) out.set(f, st);
    }
    return out;
  }

  function treeKey(tree: Tree): string {
    return tree.files.map((f) => `${f.path}\0${f.hash}`).join("\n");
  }

  /**
   * Checkpoint the output folder as it is now (limited to `sub`), leaving out files for which
   * `changedAfterLine` says they changed after the metrics line: their bytes for that line are gone,
   * so they are listed as torn rather than stored wrong.
   */
  async function checkpoint(
    step: number | null,
    metrics: Record<string, unknown>,
    sub?: string,
    changedAfterLine?: (rel: string) => boolean,
  ): Promise<void> {
    const current = await scanOutput();
    const subClean = sub?.replace(/^\.\/+/, "").replace(/\/+$/, "");
    const wanted: string[] = [];
    const torn: string[] = [];
    for (const rel of current.keys()) {
      if (subClean && rel !== subClean && !rel.startsWith(subClean + "/")) continue;
      if (changedAfterLine?.(rel)) torn.push(rel);
      else wanted.push(rel);
    }
    const snap = await rec.snapshot(output, wanted);
    const bad = new Set([...snap.torn, ...snap.missing]);
    torn.push(...snap.torn);
    const tree: Tree = {
      format: TREE_FORMAT,
      files: snap.tree.files.filter((f) => !bad.has(f.path)),
    };
    if (torn.length) {
      opts.say(
        `rep: warning: ${torn.join(", ")} changed before rep could read the version of step ${
          step ?? "?"
        }; left out of that checkpoint\n`,
      );
    }
    await rec.commit({
      tree: tree.files.length ? tree : null,
      step,
      metrics: metrics as Record<string, number>,
      torn: torn.sort(),
    });
    checkpoints++;
    debug?.(`checkpoint step ${step}: ${tree.files.length} file(s), torn ${torn.length}`);
    lastStep = step;
    if (!sub) {
      lastTreeKey = treeKey(tree);
      changedSince = 0;
    }
  }

  // Freezing: while rep reads the files of a metrics line, the command's process group is
  // stopped (SIGSTOP/SIGCONT), so nothing can change under the snapshot. A guardian process
  // resumes the command if rep itself dies meanwhile.
  let childPid = 0;
  const canFreeze = Deno.build.os !== "windows" && env.REP_NO_FREEZE === undefined;
  const freeze = (): boolean => {
    if (!canFreeze || !childPid || !childRunning) return false;
    try {
      Deno.kill(-childPid, "SIGSTOP");
      return true;
    } catch {
      return false;
    }
  };
  /** True once the command and every process of its group are gone: nothing changes any more. */
  const groupGone = (): boolean => {
    if (childRunning || !childPid || Deno.build.os === "windows") return false;
    try {
      Deno.kill(-childPid, "SIGCONT"); // a no-op probe for a process left in the group
      return false;
    } catch {
      return true;
    }
  };
  const thaw = () => {
    try {
      Deno.kill(-childPid, "SIGCONT");
    } catch {
      // gone
    }
  };

  let metricsWarned = 0;
  const malformed: { line: number; reason: string; text: string }[] = [];
  let batchSeq = 0; // event sequence up to which earlier batches were handled
  let batchStill = true; // whether nothing changed while the previous batch was read

  async function handleMetrics(
    events: MetricsEvent[],
    exactLast: boolean,
    synced: boolean,
    still: boolean,
  ) {
    const good = events.filter((e) => e.kind === "metrics");
    // Lines before the last of a batch were written somewhere after the batch's first write to
    // the metrics file. When the command was stopped (or gone) during this batch and the
    // previous one, every event up to batchSeq happened before the previous read, so that first
    // write is the first metrics event after batchSeq; otherwise only batchSeq is known.
    const first = changes.firstMetricsAfter(batchSeq);
    const earlier = still && batchStill ? first : batchSeq;
    for (const ev of events) {
      if (ev.kind === "malformed") {
        if (metricsWarned++ < 5) {
          opts.say(
            `rep: warning: ${
              relative(opts.cwd, metricsPath)
            } line ${ev.line} ignored: ${ev.reason}\n`,
          );
        }
        malformed.push({ line: ev.line, reason: ev.reason, text: ev.text.slice(0, 200) });
        continue;
      }
      sawMetrics = true;
      const step = ev.step ?? (lastStep === null ? 0 : lastStep + 1);
      // The last complete line was written by the newest metrics-file event; an earlier line of
      // the same batch somewhere after the batch's first metrics write, so any change since then
      // is suspect.
      const since = ev === good[good.length - 1] && exactLast ? changes.lastMetrics : earlier;
      await checkpoint(
        step,
        ev.metrics,
        ev.path,
        synced ? (rel) => changes.changedAfter(rel, since) : undefined,
      );
    }
  }

  /** Read new metrics lines; each makes a checkpoint. */
  async function readMetrics(final: boolean): Promise<void> {
    let st = await Deno.stat(metricsPath).catch(() => null);
    if (!st) return;
    if (st.size < metricsOffset) {
      opts.say(`rep: warning: ${relative(opts.cwd, metricsPath)} was truncated; reading it anew\n`);
      metricsOffset = 0;
      tail.reset();
    }
    if (st.size === metricsOffset && !final) return;
    const frozen = freeze();
    try {
      // Stopped, or ended: either way nothing changes while the lines are read.
      const still = (frozen && await allStopped(childPid)) || groupGone();
      const synced = await changes.sync();
      st = await Deno.stat(metricsPath).catch(() => null);
      if (!st) return;
      const events: MetricsEvent[] = [];
      let endsWithNewline = true;
      if (st.size > metricsOffset) {
        using f = await Deno.open(metricsPath);
        await f.seek(metricsOffset, Deno.SeekMode.Start);
        const buf = new Uint8Array(Math.min(st.size - metricsOffset, 16 << 20));
        let n = 0;
        while (n < buf.length) {
          const r = await f.read(buf.subarray(n));
          if (r === null) break;
          n += r;
        }
        metricsOffset += n;
        endsWithNewline = n === 0 || buf[n - 1] === 10;
        events.push(...tail.push(buf.subarray(0, n)));
      }
      if (final) events.push(...tail.flush());
      await handleMetrics(events, endsWithNewline && still, synced, still);
      batchSeq = changes.seq;
      batchStill = still && metricsOffset >= st.size; // lines left unread predate this read
    } finally {
      if (frozen) thaw();
    }
  }

  // ---- the log: the command's output, stored in segments ---------------------------------------
  let logSeq = 0;
  let logBuf: Uint8Array[] = [];
  let logBytes = 0;
  let logTotal = 0;
  // Segments are queued one after another; the pipes wait for a full segment to be queued
  // (bounded memory when the disk is slower than the command) and the end waits for all of them.
  let logChain: Promise<void> = Promise.resolve();
  let logFailed = false;
  const flushLog = (): Promise<void> => {
    if (!logBytes) return logChain;
    const data = new Uint8Array(logBytes);
    let o = 0;
    for (const b of logBuf) {
      data.set(b, o);
      o += b.length;
    }
    logBuf = [];
    logBytes = 0;
    const key = logKey(id, ++logSeq);
    logChain = logChain.then(() => rec.outbox.addBytes(key, data, "data")).catch((e) => {
      if (!logFailed) opts.say(`rep: could not store the log: ${(e as Error).message}\n`);
      logFailed = true;
    });
    return logChain;
  };
  const logWrite = (b: Uint8Array): Promise<void> | null => {
    logBuf.push(b.slice());
    logBytes += b.length;
    logTotal += b.length;
    return logBytes >= LOG_SEGMENT ? flushLog() : null;
  };

  // ---- watching ---------------------------------------------------------------------------------
  // The metrics file must exist to be watched (appending scripts are unaffected).
  await Deno.writeFile(metricsPath, new Uint8Array(0), { append: true });
  let wake = null as (() => void) | null;
  let dirty = false;
  const changes = new ChangeLog(output, metricsPath, () => {
    dirty = true;
    wake?.();
  });
  changes.start();

  // ---- the child -------------------------------------------------------------------------------
  const childEnv: Record<string, string> = {
    ...env,
    REP_EXPERIMENT_ID: id,
    REP_OUTPUT_DIR: output,
    REP_METRICS_FILE: metricsPath,
  };
  if (childEnv.PYTHONUNBUFFERED === undefined) childEnv.PYTHONUNBUFFERED = "1";
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(opts.command[0]!, {
      args: opts.command.slice(1),
      cwd: opts.cwd,
      env: childEnv,
      clearEnv: true,
      stdin: "inherit",
      stdout: "piped",
      stderr: "piped",
      detached: true,
    }).spawn();
  } catch (e) {
    await rec.stop("failed", { exitCode: 127 });
    if (e instanceof Deno.errors.NotFound) {
      throw new UsageError(
        `Cannot run "${opts.command[0]}": command not found`,
        "Check the command name and your PATH",
      );
    }
    throw e;
  }
  childPid = child.pid;
  const guardian = canFreeze ? startGuardian(childPid) : null;

  // Signals: forwarded to the command while it runs (it runs in its own process group, so a
  // terminal's Ctrl-C reaches it once, through us); after it ended, one stops the upload wait.
  let userSignal: string | null = null;
  let giveUpWaiting: (() => void) | null = null;
  const handlers: [Deno.Signal, () => void][] = [];
  for (const sig of SIGNALS) {
    const h = () => {
      if (childRunning) {
        userSignal ??= sig;
        try {
          child.kill(sig);
        } catch {
          // already gone
        }
      } else giveUpWaiting?.();
    };
    try {
      Deno.addSignalListener(sig, h);
      handlers.push([sig, h]);
    } catch {
      // signal not supported on this platform
    }
  }

  const decoder = new TextDecoder();
  const pipe = async (
    stream: ReadableStream<Uint8Array>,
    sink: (b: Uint8Array) => void,
    parse: boolean,
  ) => {
    for await (const chunk of stream) {
      sink(chunk);
      const queued = logWrite(chunk);
      if (parse && scalars) {
        for (const ev of scalars.push(decoder.decode(chunk, { stream: true }))) {
          scalarQueue.push({ ev, t: Date.now() });
        }
      }
      if (queued) await queued;
    }
  };
  const scalarQueue: { ev: { step?: number; metrics: Record<string, number> }; t: number }[] = [];
  const pumps = Promise.all([
    pipe(child.stdout, opts.stdout, true),
    pipe(child.stderr, opts.stderr, false),
  ]);

  // ---- the watch loop --------------------------------------------------------------------------
  let running = true;
  const status = child.status.then((s) => {
    running = false;
    childRunning = false;
    wake?.();
    return s;
  });
  let loopError: unknown = null;
  const scalarCheckpoints = async () => {
    while (scalarQueue.length) {
      const { ev } = scalarQueue.shift()!;
      sawMetrics = true;
      await checkpoint(ev.step ?? (lastStep === null ? 0 : lastStep + 1), ev.metrics);
    }
  };
  const tick = async () => {
    await readMetrics(false);
    await scalarCheckpoints();
    // Read changed files ahead of time (keeps the frozen snapshot short), and checkpoint changes
    // that settled without a metrics line.
    const current = await scanOutput();
    const changed = [...current.keys()].filter((rel) => {
      const c = rec.statCache.get(join(output, rel));
      const st = current.get(rel)!;
      return !c || c.key.size !== st.size || c.key.mtime !== (st.mtime?.getTime() ?? 0) ||
        c.key.ino !== st.ino;
    });
    if (changed.length) {
      changedSince ||= Date.now();
      await rec.snapshot(output, changed);
    }
    let newest = 0;
    for (const st of current.values()) newest = Math.max(newest, st.mtime?.getTime() ?? 0);
    const wait = sawMetrics ? Math.max(settleMs, 30_000) : settleMs;
    if (changedSince && Date.now() - newest >= wait && Date.now() - changedSince >= wait) {
      const snap = await rec.snapshot(output, [...current.keys()]);
      if (snap.torn.length === 0 && treeKey(snap.tree) !== lastTreeKey) {
        await checkpoint(null, {});
      } else if (snap.torn.length === 0) changedSince = 0;
    }
  };
  const loop = (async () => {
    while (running) {
      dirty = false;
      try {
        await tick();
      } catch (e) {
        // Never harm the run: report once, keep going.
        if (!loopError) opts.say(`rep: error while checkpointing: ${(e as Error).message}\n`);
        loopError = e;
      }
      if (!running) break;
      if (dirty) continue;
      await new Promise<void>((r) => {
        const timer = setTimeout(r, POLL_MS);
        wake = () => {
          clearTimeout(timer);
          setTimeout(r, 2); // let a burst of writes land
        };
      });
      wake = null;
    }
  })();

  const st = await status;
  await loop;
  await pumps;
  guardian?.kill();

  // Final pass: remaining metrics lines (a last unterminated line counts), stdout scalars, and a
  // last checkpoint when the output changed since the previous one.
  try {
    await readMetrics(true);
    if (scalars) {
      for (const ev of scalars.flush()) scalarQueue.push({ ev, t: Date.now() });
    }
    await scalarCheckpoints();
    const current = await scanOutput();
    const snap = await rec.snapshot(output, [...current.keys()]);
    if (snap.tree.files.length && treeKey(snap.tree) !== lastTreeKey) await checkpoint(null, {});
  } catch (e) {
    opts.say(`rep: error while taking the last checkpoint: ${(e as Error).message}\n`);
  }
  changes.close();
  if (malformed.length) {
    await rec.outbox.addBytes(
      malformedKey(id),
      new TextEncoder().encode(JSON.stringify(malformed)),
      "data",
    ).catch((e) => opts.say(`rep: could not store the malformed lines: ${(e as Error).message}\n`));
  }
  await flushLog();

  let exitCode: number;
  let runStatus: RunResult["status"];
  const signal = st.signal ?? null;
  if (st.signal) {
    exitCode = 128 + (SIGNUM[st.signal] ?? 0);
    runStatus = userSignal ? "stopped" : "failed";
  } else {
    exitCode = st.code;
    // A command that handles the user's Ctrl-C/SIGTERM and exits 0 was still stopped early.
    runStatus = userSignal ? "stopped" : st.code === 0 ? "succeeded" : "failed";
  }

  // Wait for uploads; a second Ctrl-C stops waiting and leaves them queued on disk.
  const pending = rec.pending();
  let pendingLeft = false;
  // A local store finishes at once (renames); a remote one may take a while: say so.
  if (pending.items > 0 && (opts.progress || !(opts.repo.store instanceof LocalStore))) {
    opts.say(
      `rep: uploading ${pending.items} object(s), ${formatBytes(pending.bytes)}` +
        (opts.progress ? " (Ctrl-C to stop waiting; nothing is lost)\n" : "\n"),
    );
  }
  const gaveUp = new Promise<"gave-up">((r) => {
    giveUpWaiting = () => r("gave-up");
  });
  // While storage keeps failing, wait at most REP_UPLOAD_WAIT seconds (default 300).
  const maxFailing = Number(env.REP_UPLOAD_WAIT ?? 300) * 1000;
  let failingSince: number | null = null;
  const progressTimer = pending.items > 0
    ? setInterval(() => {
      const p = rec.pending();
      if (p.error) failingSince ??= Date.now();
      else failingSince = null;
      if (failingSince !== null && Date.now() - failingSince > maxFailing) giveUpWaiting?.();
      if (opts.progress) {
        opts.say(
          `\rrep: ${p.items} object(s), ${formatBytes(p.bytes)} left${
            p.error ? " (storage failing, retrying)" : ""
          }   `,
        );
      }
    }, 500)
    : undefined;
  const stopResult = await Promise.race([
    rec.stop(runStatus, { exitCode, signal }).then(() => "done" as const),
    gaveUp,
  ]).catch((e: unknown) => {
    // The status record could not be queued (a full disk): still end with the command's code.
    opts.say(`rep: could not record the end of the run: ${(e as Error).message}\n`);
    return "gave-up" as const;
  });
  clearInterval(progressTimer);
  if (progressTimer && opts.progress) opts.say("\n");
  if (stopResult === "gave-up") {
    rec.abandon();
    pendingLeft = true;
    opts.say(
      `rep: stopped waiting; ${rec.pending().items} object(s) stay queued in ${rec.outbox.dir}\n` +
        `rep: run "rep push" to upload them; until then experiment ${
          id.slice(0, 7)
        } reads as crashed\n`,
    );
  }
  for (const [sig, h] of handlers) Deno.removeSignalListener(sig, h);
  void logTotal;
  return { experimentId: id, exitCode, status: runStatus, checkpoints, pendingLeft };
}

/**
 * Wait until every thread of process group `pgid` is stopped (or gone). SIGSTOP takes effect only
 * when a thread leaves the kernel: a system call in progress (a truncating open, a long write) can
 * already show its effect on a file while its file event comes only at its end, after rep's
 * barrier. Reads /proc through `sh` (rep's own permissions cannot read /proc/<pid>). False when
 * that is not possible (no /proc) or takes longer than `timeoutMs`.
 */
export async function allStopped(pgid: number, timeoutMs = 2000): Promise<boolean> {
  if (Deno.build.os !== "linux") return false;
  const end = Date.now() + timeoutMs;
  const dec = new TextDecoder();
  for (;;) {
    let text: string;
    try {
      const out = await new Deno.Command("sh", {
        args: ["-c", "cat /proc/[0-9]*/task/[0-9]*/stat 2>/dev/null"],
        stdin: "null",
        stdout: "piped",
        stderr: "null",
      }).output();
      text = dec.decode(out.stdout);
    } catch {
      return false;
    }
    let tasks = 0;
    let running = false;
    for (const line of text.split("\n")) {
      // pid (comm) state ppid pgrp …; comm may hold spaces and parentheses.
      const close = line.lastIndexOf(")");
      if (close < 0) continue;
      tasks++;
      const [state, , pgrp] = line.slice(close + 2).split(" ");
      // T: stopped, t: traced, Z/X: exited.
      if (Number(pgrp) === pgid && !"TtZXx".includes(state ?? "?")) running = true;
    }
    if (tasks === 0) return false; // no /proc: cannot tell
    if (!running) return true;
    if (Date.now() >= end) return false;
    await new Promise((r) => setTimeout(r, 1));
  }
}

/**
 * The command as recorded: values of secret-named options (`--api-key X`, `--password=X`,
 * `token=X`) are redacted like secret params, and known credential formats anywhere.
 */
export function redactCommand(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const assign = /^(-{0,2}|\+{1,2})([A-Za-z_][A-Za-z0-9_.-]*)=([\s\S]+)$/.exec(a);
    if (i > 0 && assign && isSecretName(assign[2]!)) {
      out.push(`${assign[1]}${assign[2]}=${REDACTED}`);
      continue;
    }
    out.push(redactValue(a));
    const opt = /^--?([A-Za-z0-9_][A-Za-z0-9_.-]*)$/.exec(a);
    const next = args[i + 1];
    if (i > 0 && opt && isSecretName(opt[1]!) && next !== undefined && !next.startsWith("-")) {
      out.push(REDACTED);
      i++;
    }
  }
  return out;
}

/**
 * A small shell process that resumes the command's process group if rep dies while the command is
 * frozen for a snapshot (SIGKILL cannot be caught, so rep cannot do it itself).
 */
function startGuardian(pgid: number): Deno.ChildProcess | null {
  try {
    const script =
      `while kill -0 ${Deno.pid} 2>/dev/null; do sleep 1; done; kill -CONT -${pgid} 2>/dev/null`;
    const p = new Deno.Command("sh", {
      args: ["-c", script],
      stdin: "null",
      stdout: "null",
      stderr: "null",
      detached: true,
    }).spawn();
    p.unref();
    return p;
  } catch {
    return null;
  }
}
