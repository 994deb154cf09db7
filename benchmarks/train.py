"""Training throughput of minitf's real train step, against a PyTorch reference.

    python benchmarks/train.py [--rounds 7] [--configs A B] [--devices 1]

Times `minitf.train`'s own jitted step (forward + backward + clipped AdamW) on two
model sizes, and the same architecture written nanoGPT-style in eager PyTorch
(benchmarks/torch_reference.py, 2 threads) when torch is installed. PyTorch runs in its
own process and the two take turns, a slice of steps each, so both see the same machine
load; the table shows medians over the rounds. It compiles as the `minitf` command does
(-O2, minitf/devices.py) but without the disk cache, so the first step is a cold one.
`--devices 2` splits the batch over two XLA host devices (data parallel on one CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

CONFIGS = {  # the two sizes of issue 4's Speed section
    "A": dict(n_layer=2, n_head=4, d_model=128, d_mlp=512, seq=32, vocab=16, batch=64),
    "B": dict(n_layer=4, n_head=4, d_model=256, d_mlp=1024, seq=128, vocab=512, batch=32),
}
SLICE_SECONDS = 1.0  # each turn runs about this long, so a turn is many steps of config A


def minitf_runner(c: dict) -> tuple:
    """Build the real train step; returns run(n) -> seconds, and the seconds from nothing
    to the first finished step: initialising the parameters and the optimizer's state
    (one jitted program, as train() does), then compiling and running the step once."""
    import jax
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec

    from minitf.model import Config
    from minitf.train import TrainConfig, _compiled, data_mesh

    t0 = time.perf_counter()
    config = Config(vocab_size=c["vocab"], n_layer=c["n_layer"], n_head=c["n_head"],
                    d_model=c["d_model"], d_mlp=c["d_mlp"], max_len=c["seq"])  # fmt: skip
    mesh = data_mesh(c["batch"])
    split = NamedSharding(mesh, PartitionSpec("batch"))
    # what train() uses: AdamW settings, parameters + optimizer state, the jitted step
    _, init_state, step = _compiled(config, TrainConfig(steps=1000, lr=1e-3, warmup=50), mesh)
    state = list(init_state(jax.random.key(0)))
    jax.block_until_ready(state)
    t1 = time.perf_counter()
    rng = np.random.default_rng(0)
    # seq + 1 tokens: the loss feeds tokens[:, :-1] to the model, so it sees seq positions
    tokens = rng.integers(0, c["vocab"], (c["batch"], c["seq"] + 1), dtype=np.int32)
    tokens = jax.device_put(tokens, split)
    loss_mask = jax.device_put(np.ones(tokens.shape, dtype=bool), split)

    def run(n: int) -> float:
        t = time.perf_counter()
        for _ in range(n):
            state[0], state[1], loss, _ = step(state[0], state[1], (tokens, loss_mask))
        loss.block_until_ready()
        return time.perf_counter() - t

    run(1)
    return run, t1 - t0, time.perf_counter() - t1


def torch_runner(c: dict):
    """Start the PyTorch reference in its own process; returns run(n) -> seconds, or None."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return None
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("torch_reference.py"))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    proc.stdin.write(json.dumps(c) + "\n")

    def run(n: int) -> float:
        proc.stdin.write(f"{n}\n")
        proc.stdin.flush()
        return float(proc.stdout.readline())

    run.close = lambda: (proc.stdin.close(), proc.wait())
    return run


def measure(name: str, rounds: int) -> dict:
    """Warm both up, then let them take turns; median tokens/s of each."""
    c = CONFIGS[name]
    tokens_per_step = c["batch"] * c["seq"]
    # minitf first, on an otherwise idle machine: its first step is one of the results
    runners = {}
    runners["minitf"], init, first_step = minitf_runner(c)
    if (torch_run := torch_runner(c)) is not None:
        runners["torch"] = torch_run
    steps = {}
    for who, run in runners.items():  # warm up; size a turn to about SLICE_SECONDS
        run(2)
        steps[who] = max(1, round(SLICE_SECONDS / (run(3) / 3)))
    speeds = {who: [] for who in runners}
    for _ in range(rounds):
        for who, run in runners.items():
            speeds[who].append(steps[who] * tokens_per_step / run(steps[who]))
    if "torch" in runners:
        runners["torch"].close()
    result = {who: statistics.median(v) for who, v in speeds.items()}
    result["first_step"], result["init"] = first_step, init
    return result


def machine() -> str:
    import jax

    return (
        f"{platform.platform()}, {os.cpu_count()} CPUs, python {platform.python_version()}, "
        f"jax {jax.__version__}, devices {[str(d) for d in jax.devices()]}, "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, "
        f"load average {os.getloadavg()[0]:.1f} (other processes slow PyTorch's threads most)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="turns each (default 7)")
    parser.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=sorted(CONFIGS))
    parser.add_argument("--devices", type=int, default=1,
                        help="XLA host devices to split the batch over (default 1)")  # fmt: skip
    args = parser.parse_args()
    if args.devices < 1:
        parser.error("--devices must be at least 1")
    from minitf.devices import configure_cpu_devices, setup_compilation

    if args.devices > 1 and configure_cpu_devices(args.devices) is None:
        parser.error("--devices > 1 needs XLA_FLAGS unset (it sets the host device count)")
    setup_compilation(disk_cache=False)  # before jax computes anything
    try:
        import torch

        reference = f"torch {torch.__version__}, eager, float32, 2 threads"
    except ImportError:
        reference = "torch not installed"
    print(f"machine: {machine()}")
    print(f"reference: {reference}\n")
    print("| config | minitf tokens/s | torch tokens/s | ratio | first step (s) |")
    print("|---|---:|---:|---:|---:|")
    for name in args.configs:
        r = measure(name, args.rounds)
        c = CONFIGS[name]
        label = f"{name} (L{c['n_layer']} D{c['d_model']} T{c['seq']} V{c['vocab']} B{c['batch']})"
        t = f"{r['torch']:,.0f}" if "torch" in r else "-"
        ratio = f"{r['minitf'] / r['torch']:.2f}x" if "torch" in r else "-"
        first = f"{r['init'] + r['first_step']:.1f} ({r['init']:.1f} + {r['first_step']:.1f})"
        print(f"| {label} | {r['minitf']:,.0f} | {t} | {ratio} | {first} |", flush=True)
    print(
        "\nfirst step: from nothing to one finished training step, in a fresh process: "
        "initialising the parameters and the optimizer state, then compiling and running the step."
        f"\nload average at the end: {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
