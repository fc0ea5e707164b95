#!/usr/bin/env python3
"""Train a logistic-regression classifier on a synthetic dataset (stdlib only).

An example training script for `rep run`; it knows nothing about rep beyond two optional
environment variables:

  REP_OUTPUT_DIR    where to write the model (default: ./output)
  REP_METRICS_FILE  the JSONL metrics file (default: $REP_OUTPUT_DIR/metrics.jsonl)

Each epoch it writes the model file (model.bin, or model.json with --format json) atomically,
then appends one metrics line {"step": epoch, "loss": ..., "accuracy": ...} and flushes it, and
prints "epoch N loss X". The same --seed gives the same data, model and metrics.

    rep run -- python examples/train.py --lr 0.1 --epochs 20
"""

import argparse
import json
import math
import os
import random
import struct
import sys
import time

MAGIC = b"REPLR001"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lr", type=float, default=0.1, help="learning rate (default 0.1)")
    p.add_argument("--epochs", type=int, default=10, help="passes over the data (default 10)")
    p.add_argument("--batch-size", type=int, default=32, help="mini-batch size (default 32)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--sleep", type=float, default=0.05, help="seconds to sleep per epoch (default 0.05)")
    p.add_argument("--samples", type=int, default=1000, help="dataset size (default 1000)")
    p.add_argument("--features", type=int, default=8, help="input features (default 8)")
    p.add_argument("--noise", type=float, default=0.1, help="label flip probability (default 0.1)")
    p.add_argument("--format", choices=["bin", "json"], default="bin", help="model file format")
    args = p.parse_args(argv)
    for name in ("epochs", "batch_size", "samples", "features"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.sleep < 0:
        p.error("--sleep must not be negative")
    return args


def make_dataset(rng, samples, features, noise):
    """Points from a standard normal, labelled by a random hyperplane, with some labels flipped."""
    true_w = [rng.gauss(0.0, 1.0) for _ in range(features)]
    true_b = rng.gauss(0.0, 0.5)
    xs, ys = [], []
    for _ in range(samples):
        x = [rng.gauss(0.0, 1.0) for _ in range(features)]
        y = 1 if sum(w * v for w, v in zip(true_w, x)) + true_b > 0 else 0
        if rng.random() < noise:
            y = 1 - y
        xs.append(x)
        ys.append(y)
    return xs, ys


def sigmoid(z):
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def evaluate(w, b, xs, ys):
    """Mean log loss and accuracy over the dataset."""
    loss, correct = 0.0, 0
    eps = 1e-12
    for x, y in zip(xs, ys):
        p = sigmoid(sum(wi * xi for wi, xi in zip(w, x)) + b)
        loss -= y * math.log(p + eps) + (1 - y) * math.log(1 - p + eps)
        correct += int((p >= 0.5) == (y == 1))
    return loss / len(xs), correct / len(xs)


def train_epoch(w, b, xs, ys, order, lr, batch_size):
    """One pass of mini-batch gradient descent; returns the new bias (w is updated in place)."""
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        gw = [0.0] * len(w)
        gb = 0.0
        for i in batch:
            x = xs[i]
            err = sigmoid(sum(wi * xi for wi, xi in zip(w, x)) + b) - ys[i]
            for j, xj in enumerate(x):
                gw[j] += err * xj
            gb += err
        n = len(batch)
        for j in range(len(w)):
            w[j] -= lr * gw[j] / n
        b -= lr * gb / n
    return b


def write_atomic(path, data):
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_model(out_dir, fmt, w, b, epoch):
    """Write the model: model.bin (magic, epoch, n, n+1 little-endian doubles) or model.json."""
    if fmt == "json":
        data = json.dumps({"epoch": epoch, "weights": w, "bias": b}, indent=2).encode() + b"\n"
        path = os.path.join(out_dir, "model.json")
    else:
        data = MAGIC + struct.pack(f"<II{len(w) + 1}d", epoch, len(w), *w, b)
        path = os.path.join(out_dir, "model.bin")
    write_atomic(path, data)
    return path


def main(argv=None):
    args = parse_args(argv)
    out_dir = os.environ.get("REP_OUTPUT_DIR") or "output"
    metrics_path = os.environ.get("REP_METRICS_FILE") or os.path.join(out_dir, "metrics.jsonl")
    os.makedirs(out_dir, exist_ok=True)
    if os.path.dirname(metrics_path):
        os.makedirs(os.path.dirname(metrics_path), exist_ok=True)

    rng = random.Random(args.seed)
    xs, ys = make_dataset(rng, args.samples, args.features, args.noise)
    w = [0.0] * args.features
    b = 0.0
    order = list(range(len(xs)))

    with open(metrics_path, "a", encoding="utf-8") as metrics:
        for epoch in range(1, args.epochs + 1):
            rng.shuffle(order)
            b = train_epoch(w, b, xs, ys, order, args.lr, args.batch_size)
            loss, accuracy = evaluate(w, b, xs, ys)
            save_model(out_dir, args.format, w, b, epoch)
            metrics.write(json.dumps({"step": epoch, "loss": loss, "accuracy": accuracy}) + "\n")
            metrics.flush()
            print(f"epoch {epoch} loss {loss:.6f}", flush=True)
            if args.sleep:
                time.sleep(args.sleep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
