"""One Ctrl-C at any moment stops `minitf train` cleanly and says where the checkpoint is:
while jax loads, between steps, and as a real signal from outside; a second one quits
at once. Each case runs `python -m minitf` in a subprocess; the signal comes at a named
fault point (minitf.faults) or after a line the command prints, never after a sleep."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from minitf import faults
from minitf.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TRAIN = [sys.executable, "-m", "minitf", "train", "copy", "--length", "3", "--batch-size",
         "16", "--n-layer", "1", "--n-head", "2", "--d-model", "32", "--d-mlp", "64"]  # fmt: skip


def env(fault: str | None = None) -> dict:
    out = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    out.pop(faults.ENV, None)
    return {**out, faults.ENV: fault} if fault else out


def minitf(args: list[str], fault: str) -> subprocess.CompletedProcess:
    return subprocess.run(TRAIN + args, env=env(fault), capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def assert_clean(stderr: str) -> None:
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr


def test_ctrl_c_while_jax_loads_stops_before_anything_is_written(tmp_path):
    out = tmp_path / "run"
    done = minitf(["--steps", "100000", "--out", str(out), "--no-progress"], "sigint@cli-start")
    assert done.returncode == 130, done.stderr
    assert_clean(done.stderr)
    assert "interrupted before anything started; nothing was written" in done.stderr
    assert "exact match" not in done.stdout and not out.exists()


def test_ctrl_c_between_steps_saves_and_says_where(tmp_path):
    """With --no-progress too (it used to say only "interrupted")."""
    out = tmp_path / "run"
    done = minitf(["--steps", "100000", "--out", str(out), "--no-progress"],
                  "sigint@after-step-3")  # fmt: skip
    assert done.returncode == 130, done.stderr
    assert_clean(done.stderr)
    assert (f"interrupted after step 3; the checkpoint is in {out / 'checkpoint'} (continue "
            "with --resume") in done.stderr  # fmt: skip
    assert load_checkpoint(out / "checkpoint").step == 3


def test_a_second_ctrl_c_quits_at_once(tmp_path):
    done = minitf(["--steps", "100000", "--out", str(tmp_path / "run")],
                  "sigint@cli-start,sigint@cli-start")  # fmt: skip
    assert done.returncode == 130
    assert_clean(done.stderr)
    assert "interrupted again; quitting now" in done.stderr


def test_a_real_ctrl_c_from_outside_stops_training(tmp_path):
    """SIGINT sent by another process once training has begun (after the line the
    command prints before it trains): the run stops and keeps what it did."""
    out = tmp_path / "run"
    run = subprocess.Popen(TRAIN + ["--steps", "100000", "--out", str(out), "--no-progress"],
                           env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)  # fmt: skip
    try:
        for line in run.stdout:
            if line.startswith("model "):  # printed just before training starts
                break
        run.send_signal(signal.SIGINT)
        stdout, stderr = run.communicate(timeout=300)
    finally:
        run.kill()
    assert run.returncode == 130, stderr
    assert_clean(stderr)
    assert "interrupted after step" in stderr and "exact match" not in stdout
    if "nothing was saved" not in stderr:  # the signal came after some steps
        assert load_checkpoint(out / "checkpoint").step >= 1
