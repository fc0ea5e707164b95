/**
 * Hyperparameters read from the wrapped training command's own arguments, and from `-p key=value`.
 *
 * `rep run -- python train.py --lr 0.01 --epochs=3 --verbose seed=1` records
 * `{ lr: 0.01, epochs: 3, verbose: true, seed: 1 }` without touching the script. The rules:
 *
 * **Where params start.** The program and script are skipped; params only come from the arguments
 * after the script ({@link scriptArgsStart}):
 * - Wrappers are stripped first and the rest is examined again: `uv|poetry|pipenv|pdm|hatch|conda|
 *   mamba|micromamba run [options]`, `env [-options] [NAME=value…]`, `nohup`, `time`, `nice [-n N]`.
 * - `python*` (`python`, `python3`, `python3.11`, `python.exe`): interpreter options are skipped
 *   (`-W arg` and `-X arg` take a value, combined flags like `-uB` are understood); the script is
 *   the first non-option argument, or the module after `-m`, or the code after `-c`.
 * - `node`, `bun`, `deno` (an optional `run` subcommand), `ruby`, `perl`, `Rscript`, `julia`, `bash`,
 *   `sh`, `zsh`: options are skipped (a few known ones take a separate value, e.g. node's `-r mod`,
 *   deno's `--config file`); the script is the first non-option argument.
 * - Launchers `torchrun`, `accelerate launch`, `deepspeed`: the script is the first argument that
 *   ends in a script extension (`.py`, `.js`, `.ts`, `.sh`, …) or the module after `-m`.
 * - Any other program (`./train`, `./train.py`) is itself the script: params follow `argv[0]`.
 *
 * **Which arguments are params.**
 * - `--name value` and `--name=value` (long options). The key is the name as written: dashes are not
 *   turned into underscores, and `--no-cuda` is the key `"no-cuda"` with value `true` (no negation).
 * - `--name` followed by another option, by a bare assignment, or by nothing is a flag: `true`.
 * - A value may itself start with `-` when it is a number: `--shift -1`, `--lr -1e-3`, `--x -inf`.
 * - `name=value` (Hydra-style bare assignments; `+name=value` and `++name=value` too) where the name
 *   matches `[A-Za-z_][A-Za-z0-9_.-]*`. A bare assignment is never taken as the value of a preceding
 *   flag: `--multirun lr=0.1` gives `{ multirun: true, lr: 0.1 }`.
 * - Single-dash short options (`-v`, `-n 3`, `-lr 0.1`) are ignored, together with their value
 *   (the next argument, unless it is an option or a bare assignment): they are too ambiguous.
 * - Several values of one type after one option make a list: `--layers 64 128` gives
 *   `layers: [64, 128]` (argparse's `nargs="+"`). The list runs up to the next option or assignment,
 *   or to the first value of another type (`--lr 0.1 data.csv` gives `lr: 0.1`, the file being a
 *   positional). So a positional of the same type written after an option's value joins its list
 *   (`--config a.yaml data/`): write positionals first, or add `-p config=a.yaml` to record the
 *   option's own value (see {@link mergeParams}).
 * - Positional arguments are ignored, and so is everything after a `--` end-of-options marker.
 * - A repeated key makes a list of every value given (argparse's `append` action):
 *   `--tag a --tag b` gives `tag: ["a", "b"]`; a repeated flag stays `true`.
 *
 * **Typing** ({@link parseParamValue}): decimal integers (within ±2^53) become numbers; decimal
 * floats (`0.5`, `.5`, `5.`, `1e-3`, `-2.5E+4`) become numbers; a leading zero before more digits
 * (`007`, `01.5`) keeps the text a string (it is likely an id); `true`/`false` in
 * any case become booleans; everything else stays a string, including `nan`, `inf`, hex, `007`,
 * `1_000`, `yes`/`no`, `null`/`None` and the empty string. (Non-finite numbers stay strings because
 * params are stored as JSON, which cannot represent them.)
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import type { ParamScalar, ParamValue } from "../format/records.ts";

/** A typed parameter value: a scalar, or a list for a multi-value or repeated option. */
export type { ParamValue };

const INT_RE = /^[+-]?(?:0|[1-9][0-9]*)$/;
const FLOAT_RE = /^[+-]?(?:(?:0|[1-9][0-9]*)(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;
const BOOL_RE = /^(?:true|false)$/i;
/** A negative (or explicitly signed) number, incl. inf/nan: a value, never an option. */
const SIGNED_NUMBER_RE =
  /^-(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)$/i;
const LONG_OPTION_RE = /^--([A-Za-z0-9_][A-Za-z0-9_.-]*)(?:=([\s\S]*))?$/;
const ASSIGNMENT_RE = /^\+{0,2}([A-Za-z_][A-Za-z0-9_.-]*)=([\s\S]*)$/;
const SCRIPT_EXT_RE =
  /\.(?:py|pyw|ipynb|js|mjs|cjs|ts|mts|cts|jsx|tsx|sh|bash|zsh|rb|pl|r|jl|lua)$/i;
const PYTHON_RE = /^python[0-9.]*(?:\.exe)?$/i;

/**
 * Type one parameter value: integer, float or boolean when the whole text is one, else the text.
 * See the module documentation for the exact rules.
 */
export function parseParamValue(text: string): string | number | boolean {
  if (INT_RE.test(text)) {
    const n = Number(text);
    if (Number.isSafeInteger(n)) return Object.is(n, -0) ? 0 : n;
    return text;
  }
  if (FLOAT_RE.test(text)) {
    const n = Number(text);
    return Number.isFinite(n) ? (Object.is(n, -0) ? 0 : n) : text;
  }
  if (BOOL_RE.test(text)) return text.toLowerCase() === "true";
  return text;
}

/**
 * Parse a `-p key=value` flag into its key and typed value (typed as {@link parseParamValue}).
 * The key is everything before the first `=`, trimmed; the value everything after it, as is.
 *
 * @throws {UsageError} when there is no `=` or the key is empty.
 */
export function parseParamFlag(text: string): [key: string, value: ParamValue] {
  const eq = text.indexOf("=");
  if (eq < 0) {
    throw new UsageError(
      `Invalid param ${JSON.stringify(text)}: expected key=value`,
      `Write the param as key=value, e.g. -p lr=0.01`,
    );
  }
  const key = text.slice(0, eq).trim();
  if (key === "") {
    throw new UsageError(
      `Invalid param ${JSON.stringify(text)}: the key before "=" is empty`,
      `Name the param before "=", e.g. -p lr=0.01`,
    );
  }
  return [key, parseParamValue(text.slice(eq + 1))];
}

/**
 * Read the params from a wrapped command's arguments (`args[0]` is the program), skipping the
 * program and script. See the module documentation for the exact rules.
 */
export function parseCommandParams(args: string[]): Record<string, ParamValue> {
  const entries = new Map<string, ParamValue>();
  const set = (key: string, value: ParamValue) => {
    const before = entries.get(key);
    entries.delete(key); // keep insertion order = order of the last occurrence
    entries.set(key, before === undefined ? value : joined(before, value));
  };
  let i = scriptArgsStart(args);
  while (i < args.length) {
    const arg = args[i]!;
    const next = args[i + 1];
    i++;
    if (arg === "--") break;
    const long = LONG_OPTION_RE.exec(arg);
    if (long) {
      const key = long[1]!;
      if (long[2] !== undefined) {
        set(key, parseParamValue(long[2]));
      } else if (next !== undefined && isValueToken(next)) {
        const values: ParamScalar[] = [parseParamValue(args[i++]!)];
        while (i < args.length && isValueToken(args[i]!)) {
          const v = parseParamValue(args[i]!);
          if (typeof v !== typeof values[0]) break; // `--lr 0.1 data.csv`: a positional follows
          values.push(v);
          i++;
        }
        set(key, values.length === 1 ? values[0]! : values);
      } else {
        set(key, true);
      }
      continue;
    }
    if (isOption(arg)) {
      // A short option (or a malformed long one): ignored with its value.
      if (!arg.startsWith("--") && !arg.includes("=") && next !== undefined && isValueToken(next)) {
        i++;
      }
      continue;
    }
    const assign = ASSIGNMENT_RE.exec(arg);
    if (assign) set(assign[1]!, parseParamValue(assign[2]!));
    // else: a positional argument, ignored.
  }
  return Object.fromEntries(entries);
}

/** Two values given for one key: a list of both (a repeated flag stays `true`). */
function joined(a: ParamValue, b: ParamValue): ParamValue {
  if (a === true && b === true) return true;
  return [...(Array.isArray(a) ? a : [a]), ...(Array.isArray(b) ? b : [b])];
}

/**
 * The params of a run: the command's own (`parseCommandParams`) with the `-p` flags added. A `-p`
 * value for a key the command also sets must agree with it: the script runs with the command's
 * value, so a different one would record what did not run. It agrees when equal, or when the
 * command's value is a list that starts with it (`-p config=a.yaml` for `--config a.yaml data/`,
 * where the positional `data/` was read as a second value).
 *
 * @throws {UsageError} naming both values when they contradict.
 */
export function mergeParams(
  command: Record<string, ParamValue>,
  flags: Record<string, ParamValue>,
): Record<string, ParamValue> {
  for (const [k, v] of Object.entries(flags)) {
    const own = command[k];
    if (own === undefined || agrees(own, v)) continue;
    throw new UsageError(
      `-p ${k}=${show(v)} contradicts the command's own argument --${k} ${show(own)}: the ` +
        `script runs with ${show(own)}`,
      `Drop -p ${k}, or change the command's argument to the value you mean`,
    );
  }
  return { ...command, ...flags };
}

function agrees(own: ParamValue, flag: ParamValue): boolean {
  if (JSON.stringify(own) === JSON.stringify(flag)) return true;
  return Array.isArray(own) && !Array.isArray(flag) && own[0] === flag;
}

function show(v: ParamValue): string {
  return Array.isArray(v) ? v.join(" ") : String(v);
}

/** True for an argument that looks like an option (`-x`, `--x`), but not a negative number or `-`. */
function isOption(arg: string): boolean {
  return arg.length > 1 && arg.startsWith("-") && !SIGNED_NUMBER_RE.test(arg);
}

/** True for an argument that can be the value of a preceding option. */
function isValueToken(arg: string): boolean {
  return arg !== "--" && !isOption(arg) && !ASSIGNMENT_RE.test(arg);
}

function baseName(program: string): string {
  const parts = program.split(/[\\/]/);
  return parts[parts.length - 1] ?? program;
}

/** Options (per interpreter) that take their value as the next argument. */
const VALUE_OPTIONS: Record<string, ReadonlySet<string>> = {
  node: new Set([
    "-r",
    "--require",
    "--import",
    "--loader",
    "--experimental-loader",
    "--env-file",
    "--inspect-port",
    "--title",
    "-C",
    "--conditions",
    "--input-type",
    "--stack-size",
  ]),
  deno: new Set([
    "-c",
    "--config",
    "--import-map",
    "--lock",
    "--cert",
    "--location",
    "--seed",
    "--ext",
    "--preload",
    "--watch-exclude",
  ]),
  bun: new Set(["-r", "--preload", "--cwd", "--env-file", "--config", "-c", "--tsconfig-override"]),
  ruby: new Set(["-I", "-r", "-C", "-E", "-F"]),
  perl: new Set(["-I", "-M", "-m"]),
  julia: new Set(["-J", "--sysimage", "-L", "--load", "-t", "--threads", "--project", "-p"]),
  bash: new Set(["-o", "-O", "--rcfile", "--init-file"]),
  wrapper: new Set([
    "--with",
    "--with-requirements",
    "--with-editable",
    "--python",
    "-p",
    "--project",
    "--directory",
    "--env-file",
    "--group",
    "--extra",
    "--package",
    "--index",
    "--index-url",
    "-n",
    "--name",
    "--prefix",
    "-e",
    "--env",
    "-u",
    "--unset",
    "-C",
    "--chdir",
  ]),
};

const WRAPPERS_WITH_RUN = new Set([
  "uv",
  "poetry",
  "pipenv",
  "pdm",
  "hatch",
  "conda",
  "mamba",
  "micromamba",
  "rye",
]);

/**
 * The index in `args` of the first argument after the program and script (the script's own
 * arguments begin there). `args.length` when there are none. See the module documentation.
 */
export function scriptArgsStart(args: string[], start = 0): number {
  let i = start;
  const program = args[i];
  if (program === undefined) return args.length;
  const name = baseName(program).toLowerCase().replace(/\.exe$/, "");

  // Wrappers: strip them and look again.
  if (WRAPPERS_WITH_RUN.has(name) && args[i + 1] === "run") {
    return scriptArgsStart(args, skipOptions(args, i + 2, VALUE_OPTIONS.wrapper!));
  }
  if (name === "env") {
    i = skipOptions(args, i + 1, VALUE_OPTIONS.wrapper!);
    while (i < args.length && /^[A-Za-z_][A-Za-z0-9_]*=/.test(args[i]!)) i++;
    return scriptArgsStart(args, i);
  }
  if (name === "nohup" || name === "time") return scriptArgsStart(args, i + 1);
  if (name === "nice") {
    i++;
    if (args[i] === "-n") i += 2;
    else if (/^-/.test(args[i] ?? "")) i++;
    return scriptArgsStart(args, i);
  }

  if (PYTHON_RE.test(name)) return afterPythonScript(args, i + 1);
  if (name === "torchrun" || name === "deepspeed") return afterLaunchedScript(args, i + 1);
  if (name === "accelerate" && args[i + 1] === "launch") return afterLaunchedScript(args, i + 2);

  let valueOptions: ReadonlySet<string> | undefined;
  if (name === "node" || name === "nodejs") valueOptions = VALUE_OPTIONS.node;
  else if (name === "deno") {
    valueOptions = VALUE_OPTIONS.deno;
    if (args[i + 1] === "run") i++;
  } else if (name === "bun") {
    valueOptions = VALUE_OPTIONS.bun;
    if (args[i + 1] === "run") i++;
  } else if (name === "ruby") valueOptions = VALUE_OPTIONS.ruby;
  else if (name === "perl") valueOptions = VALUE_OPTIONS.perl;
  else if (name === "julia") valueOptions = VALUE_OPTIONS.julia;
  else if (name === "rscript") valueOptions = new Set<string>();
  else if (name === "bash" || name === "sh" || name === "zsh") valueOptions = VALUE_OPTIONS.bash;
  if (valueOptions === undefined) return i + 1; // the program is the script

  i = skipOptions(args, i + 1, valueOptions);
  // i is the script (or -e/-c code for some interpreters, close enough); its arguments follow.
  return Math.min(i + 1, args.length);
}

/** Skip options from `i`; returns the index of the first non-option argument. */
function skipOptions(args: string[], i: number, valueOptions: ReadonlySet<string>): number {
  while (i < args.length) {
    const arg = args[i]!;
    if (arg === "--") return i + 1;
    if (!arg.startsWith("-") || arg === "-") return i;
    i += valueOptions.has(arg) ? 2 : 1;
  }
  return i;
}

/** Python: `python [options] script args`, `python [options] -m module args`, `-c code args`. */
function afterPythonScript(args: string[], i: number): number {
  while (i < args.length) {
    const arg = args[i]!;
    if (arg === "--") return Math.min(i + 2, args.length);
    if (!arg.startsWith("-") || arg === "-") return i + 1;
    if (arg.startsWith("--")) {
      i += arg === "--check-hash-based-pycs" ? 2 : 1;
      continue;
    }
    // Combined short flags, e.g. -uB, -Wignore, -um module.
    let consumed = 1;
    for (let k = 1; k < arg.length; k++) {
      const c = arg[k]!;
      if (c === "m" || c === "c") {
        return k + 1 < arg.length ? i + 1 : Math.min(i + 2, args.length);
      }
      if (c === "W" || c === "X") {
        if (k + 1 === arg.length) consumed = 2;
        break;
      }
    }
    i += consumed;
  }
  return args.length;
}

/** Launchers: the first argument with a script extension, or the module after `-m`. */
function afterLaunchedScript(args: string[], i: number): number {
  for (; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "-m" || arg === "--module") return Math.min(i + 2, args.length);
    if (!arg.startsWith("-") && SCRIPT_EXT_RE.test(arg)) return i + 1;
  }
  return args.length;
}
