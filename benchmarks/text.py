"""Character-level tinyshakespeare: minitf against nanoGPT's best-known CPU run.

    python benchmarks/text.py [--memory-mb 50] [--no-memory]

nanoGPT's README trains a character model on tinyshakespeare on a laptop CPU (n_layer 4,
n_head 4, n_embd 128, block_size 64, batch_size 12, max_iters 2000, lr 1e-3 with warmup
100 and cosine decay to 1e-4 at 2000, beta2 0.99, weight decay 0.1, dropout 0) and
reports a validation loss of about 1.88 in about 3 minutes. In one run this script
trains, one after the other:

  (a) that recipe in PyTorch (benchmarks/torch_reference.py: eager, float32, 2 threads,
      tied embeddings as in nanoGPT);
  (b) the same recipe in minitf, on the very same batches;
  (c) minitf's own default character recipe (`minitf.text.TEXT_DEFAULTS["char"]`, what
      `minitf train text --tokenizer char` runs).

All three use a character vocabulary and the 90/10 split by position, and are scored on
the same validation windows: the whole validation text (the file's last 10%) in windows
of 64. Wall time is the training itself with compilation (JAX's disk cache is off), not
tokenising or scoring. The targets: (b) within 0.03 nats of (a), and (c) at or below
1.88 in at most 0.6x (a)'s time. Then, unless --no-memory, it measures the peak memory
(RSS) of `minitf train text` on a 50 MB file from an empty cache: tokenising (BPE
training and encoding) plus 20 training steps. Skips with one line where
../shared/data/tinyshakespeare.txt is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"
NANOGPT = dict(n_layer=4, n_head=4, d_model=128, d_mlp=512, seq=64, batch=12, steps=2000,
               lr=1e-3, warmup=100, lr_end=1e-4, beta2=0.99, weight_decay=0.1, clip=1.0,
               tie=True, seed=0)  # fmt: skip
NANOGPT_LOSS = 1.88  # nanoGPT's reported validation loss for the recipe
TARGET_TIME = 0.6  # (c) must reach NANOGPT_LOSS in this fraction of (a)'s wall time


def run_torch(task, windows: np.ndarray, recipe: dict, folder: Path) -> dict:
    """(a): the recipe in PyTorch, in its own process, on minitf's batches."""
    batches = np.stack([task.batch(np.random.default_rng([recipe["seed"], i]), recipe["batch"])[0]
                        for i in range(recipe["steps"])])  # (steps, B, T+1) fmt: skip
    np.savez(folder / "data.npz", batches=batches.astype(np.uint16), val_windows=windows)
    job = {**recipe, "vocab": task.tokenizer.vocab_size, "data": str(folder / "data.npz")}
    (folder / "job.json").write_text(json.dumps(job), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    out = subprocess.run([sys.executable, str(Path(__file__).with_name("torch_reference.py")),
                          "text", str(folder / "job.json")], capture_output=True, text=True,
                         env=env, check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_minitf(task, windows: np.ndarray, model: dict, settings) -> dict:
    """(b) and (c): train with minitf.train and score on the validation windows."""
    from minitf.text import score_windows, token_byte_lengths
    from minitf.train import train

    config = task.config(**model)
    result = train(config, task, settings, progress=False)
    score = score_windows(result.params, config, windows, token_byte_lengths(task.tokenizer))
    return {"seconds": result.seconds, "val_loss": score.val_loss,
            "tokens": settings.steps * settings.batch_size * task.context}  # fmt: skip


def memory(n_mb: int, folder: Path) -> tuple[float, float, int]:
    """Peak RSS of `minitf train text` on an n_mb file, tokenising from an empty cache."""
    from big_text import make_big_text, peak_rss  # beside this script

    big = make_big_text(folder / f"big-{n_mb}mb.txt", n_mb * 10**6)
    env = {**os.environ, "MINITF_CACHE": str(folder / "cache")}
    argv = [sys.executable, "-m", "minitf.cli", "train", "text", "--corpus", str(big),
            "--steps", "20", "--no-progress", "--out", str(folder / "run")]  # fmt: skip
    return peak_rss(argv, env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory-mb", type=int, default=50, help="size of the memory test (50)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory test")
    args = parser.parse_args()
    if not SHAKESPEARE.is_file():
        print(f"skipped: {SHAKESPEARE} is not on this machine (the benchmark needs it)")
        return
    from minitf.devices import setup_compilation

    setup_compilation(disk_cache=False)  # compilation counts in the wall time
    import dataclasses

    import torch

    from minitf.text import TEXT_DEFAULTS, text_task, validation_windows
    from minitf.train import TrainConfig

    r = NANOGPT
    task = text_task(SHAKESPEARE, tokenizer="char", context=r["seq"], progress=False)
    windows = validation_windows(task.val_ids, r["seq"], 10**9)  # (n, T+1): all of them
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, python "
          f"{platform.python_version()}, torch {torch.__version__}, load average "
          f"{os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"tinyshakespeare: {len(task.train_ids):,} training and {len(task.val_ids):,} "
          f"validation characters, vocabulary {task.tokenizer.vocab_size}; scored on all "
          f"{len(windows):,} validation windows of {r['seq']} ({windows[:, 1:].size:,} tokens)\n")
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        loads = [os.getloadavg()[0]]
        runs["a"] = run_torch(task, windows, r, Path(tmp))
        runs["a"]["tokens"] = r["steps"] * r["batch"] * r["seq"]
        loads.append(os.getloadavg()[0])
        recipe = TrainConfig(steps=r["steps"], batch_size=r["batch"], lr=r["lr"],
                             warmup=r["warmup"], lr_end=r["lr_end"], beta2=r["beta2"],
                             weight_decay=r["weight_decay"], clip=r["clip"],
                             seed=r["seed"])  # fmt: skip
        nanogpt_model = {"n_layer": r["n_layer"], "n_head": r["n_head"], "d_model": r["d_model"],
                         "d_mlp": r["d_mlp"], "tie_embeddings": r["tie"]}  # fmt: skip
        runs["b"] = run_minitf(task, windows, nanogpt_model, recipe)
        loads.append(os.getloadavg()[0])
        model, context, settings = TEXT_DEFAULTS["char"]
        assert context == r["seq"], "the default must read windows of 64 to share the windows"
        runs["c"] = run_minitf(task, windows, model, dataclasses.replace(settings, eval_every=0))
        loads.append(os.getloadavg()[0])
        mem = None if args.no_memory else memory(args.memory_mb, Path(tmp))
    c_model, _, c_settings = TEXT_DEFAULTS["char"]
    names = {
        "a": "(a) PyTorch, nanoGPT's recipe",
        "b": "(b) minitf, nanoGPT's recipe",
        "c": (f"(c) minitf default: L{c_model['n_layer']} D{c_model['d_model']} "
              f"B{c_settings.batch_size} {c_settings.steps} steps, lr {c_settings.lr}"),
    }  # fmt: skip
    print("| run | validation loss | wall time (s) | tokens/s | time vs (a) |")
    print("|---|---:|---:|---:|---:|")
    for key, run in runs.items():
        print(f"| {names[key]} | {run['val_loss']:.3f} | {run['seconds']:.1f} | "
              f"{run['tokens'] / run['seconds']:,.0f} | "
              f"{run['seconds'] / runs['a']['seconds']:.2f}x |")  # fmt: skip
    gap = runs["b"]["val_loss"] - runs["a"]["val_loss"]
    ratio = runs["c"]["seconds"] / runs["a"]["seconds"]
    print(f"\n(b) - (a): {gap:+.3f} nats (target: within 0.03): "
          f"{'met' if abs(gap) <= 0.03 else 'missed'}")
    met = runs["c"]["val_loss"] <= NANOGPT_LOSS and ratio <= TARGET_TIME
    print(f"(c): {runs['c']['val_loss']:.3f} in {ratio:.2f}x (a)'s time (target: <= "
          f"{NANOGPT_LOSS} in <= {TARGET_TIME}x): {'met' if met else 'missed'}")
    print(f"load average before (a), after (a), (b), (c): {', '.join(f'{x:.1f}' for x in loads)}")
    if mem is not None:
        seconds, peak, code = mem
        status = "ok" if code == 0 else f"FAILED (exit {code})"
        print(f"\nmemory: `minitf train text` on a {args.memory_mb} MB file (empty cache: BPE "
              f"training, encoding, 20 steps): peak RSS {peak:,.0f} MB in {seconds:.0f} s "
              f"({status}; bound: 3,000 MB)")  # fmt: skip
    print(f"(finished {time.strftime('%Y-%m-%d %H:%M')})")


if __name__ == "__main__":
    main()
