"""Several hosts, tried on one machine: two processes on 127.0.0.1 joined by
`jax.distributed.initialize` (CPU collectives over Gloo) train to bit-identical
parameters, equal to one process with two host devices; processes started with
different settings refuse to train; when one dies, the other stops at once with a
sentence naming the last checkpoint."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from minitf import faults
from minitf.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import hashlib, json, sys
    import jax
    port, process, processes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if processes > 1:
        jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=processes,
                                   process_id=process)
    import numpy as np
    from minitf.tasks import addition, config_for
    from minitf.train import train
    task = addition(2)
    config = config_for(task, n_layer=1, n_head=2, d_model=32, d_mlp=64)
    result = train(config, task, steps=6, batch_size=16, lr=3e-3, seed=0)
    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(result.params):
        digest.update(np.asarray(leaf.addressable_data(0)).tobytes())
    print(json.dumps({"devices": jax.device_count(), "processes": jax.process_count(),
                      "digest": digest.hexdigest(), "loss": result.history["loss"]}))
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env(**extra: str) -> dict:
    out = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    out.pop(faults.ENV, None)
    return {**out, **extra}


def start(args: list[str], **extra: str) -> subprocess.Popen:
    return subprocess.Popen(args, env=env(**extra), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def finish(runs: list[subprocess.Popen]) -> list[tuple[int, str, str]]:
    try:
        done = [run.communicate(timeout=300) for run in runs]
    finally:
        for run in runs:
            run.kill()
    return [(run.returncode, out, err) for run, (out, err) in zip(runs, done, strict=True)]


def test_two_processes_train_bit_identical_to_one_process_with_two_devices():
    port = free_port()
    pair = finish([start([sys.executable, "-c", SCRIPT, str(port), str(i), "2"])
                   for i in range(2)])  # fmt: skip
    for code, _, err in pair:
        assert code == 0, err[-3000:]
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2"
    ((code, out, err),) = finish([start([sys.executable, "-c", SCRIPT, "0", "0", "1"],
                                        XLA_FLAGS=flags.strip())])  # fmt: skip
    assert code == 0, err[-3000:]
    results = [json.loads(out.strip().splitlines()[-1]) for _, out, _ in pair]
    one = json.loads(out.strip().splitlines()[-1])
    assert [(r["devices"], r["processes"]) for r in results] == [(2, 2), (2, 2)]
    assert (one["devices"], one["processes"]) == (2, 1)
    assert results[0]["digest"] == results[1]["digest"] == one["digest"]  # bit-identical
    assert results[0]["loss"] == one["loss"]
    assert "train addition" in pair[0][2] and "train addition" not in pair[1][2]  # one bar


TRAIN = [sys.executable, "-m", "minitf", "train", "copy", "--length", "3", "--batch-size", "16",
         "--n-layer", "1", "--n-head", "2", "--d-model", "32", "--d-mlp", "64",
         "--no-progress"]  # fmt: skip


def on_two_processes(args: list[str], *extra: dict) -> list[tuple[int, str, str]]:
    port = free_port()
    hosts = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id"]
    return finish([start(TRAIN + args + hosts + [str(i)], **extra[i]) for i in range(2)])


def test_the_command_on_two_processes_trains_and_stops_together(tmp_path):
    """`minitf train --coordinator` trains; a start-up check that fails on process 0 (the
    folder now holds a run) stops both at once; so do different settings."""
    out = str(tmp_path / "run")
    runs = on_two_processes(["--steps", "50", "--out", out], {}, {})
    for code, _, err in runs:
        assert code == 0, err[-3000:]
    assert "exact match on" in runs[0][1] and "process 1: trained 50 steps" in runs[1][1]
    (code0, _, err0), (code1, _, err1) = on_two_processes(["--steps", "50", "--out", out],
                                                          {}, {})  # fmt: skip
    assert (code0, code1) == (2, 2)
    assert "already holds a run" in err0
    assert "process 0 could not start (see its output), so none of the processes" in err1
    port = free_port()
    hosts = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id"]
    runs = finish([start(TRAIN + ["--steps", "50", "--out", str(tmp_path / "other"),
                                  "--seed", str(i)] + hosts + [str(i)]) for i in range(2)])
    for code, _, err in runs:
        assert code == 2, err[-3000:]
        assert ("the 2 processes must train the same run, but process 1 differs from process 0 "
                "in --seed, the first batch of data") in err  # fmt: skip
    assert not (tmp_path / "other" / "checkpoint").exists()


def test_a_dead_process_stops_the_other_with_the_last_checkpoint(tmp_path):
    """Process 1 is killed after step 5; process 0 stops at its next step (not after the
    heartbeat timeout, 100 s), saves step 5 and names it."""
    out = tmp_path / "run"
    start_time = time.perf_counter()
    (code0, _, err0), (code1, _, _) = on_two_processes(
        ["--steps", "100000", "--checkpoint-every", "2", "--out", str(out)],
        {}, {faults.ENV: "after-step-5"},
    )  # fmt: skip
    assert code1 == faults.KILLED
    assert code0 == 2, err0[-3000:]
    assert "Traceback" not in err0
    assert (f"process 0 of 2 lost contact with the others after step 5 (another process "
            f"stopped or crashed; see its output); the last checkpoint is {out / 'checkpoint'} "
            "(step 5): start every process again with --resume") in err0  # fmt: skip
    assert load_checkpoint(out / "checkpoint").step == 5
    assert time.perf_counter() - start_time < 90
