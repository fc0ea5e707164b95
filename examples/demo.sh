#!/usr/bin/env bash
# The main job: a real training run under `rep run` on the local default store, then `rep ls` and
# `rep show`. Runs in a scratch copy of the example so the project folder stays clean.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
work="${REP_DEMO_DIR:-$(mktemp -d)}"
mkdir -p "$work"
cp "$here/examples/train.py" "$work/"
cd "$work"
export RUST_BACKTRACE=0
rep() {
  deno run --allow-read --allow-write --allow-env --allow-net --allow-run --allow-sys "$here/main.ts" "$@"
}
echo "== rep run (in $work)"
rep run --primary-metric loss:minimize -- python3 train.py --lr 0.5 --epochs 10 --sleep 0.1
rep run --primary-metric loss:minimize -- python3 train.py --lr 0.05 --epochs 10 --sleep 0.1
echo
echo "== rep ls"
rep ls
echo
echo "== rep show (the latest experiment)"
rep show "$(rep ls -q | head -1)"
