"""Nothing a learner makes is lost: kills at named points during a save, power-cut
ordering (fsync), crash-safe metrics.json, the lock on a run folder, and no silent
overwrite of a run. Kills are deterministic: a subprocess dies at a named fault point
(minitf.faults), never at a random moment."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest

from minitf import faults
from minitf.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from minitf.model import init_params
from minitf.run_folder import LOCK, _process_id, claim
from minitf.tasks import addition, config_for
from minitf.train import train

TASK = addition(2)
TINY = config_for(TASK, n_layer=1, n_head=2, d_model=32, d_mlp=64)
ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, fault: str | None = None, **kwargs) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter with MINITF_FAULT=fault; returns the result."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    env.pop(faults.ENV, None)
    if fault:
        env[faults.ENV] = fault
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=300, **kwargs)  # fmt: skip


# two saves of the same checkpoint folder, steps 1 and 2; the fault kills the second one
TWO_SAVES = """
    import sys
    import numpy as np
    from minitf.checkpoint import save_checkpoint
    from minitf.model import Config
    config = Config(vocab_size=12, n_layer=1, n_head=2, d_model=8, d_mlp=16, max_len=8)
    def params(value):
        block = {"ln1": {"scale": np.ones(8), "bias": np.zeros(8)},
                 "attn": {"w_qkv": np.full((8, 24), value), "b_qkv": np.zeros(24),
                          "w_out": np.zeros((8, 8)), "b_out": np.zeros(8)},
                 "ln2": {"scale": np.ones(8), "bias": np.zeros(8)},
                 "mlp": {"w_in": np.zeros((8, 16)), "b_in": np.zeros(16),
                         "w_out": np.zeros((16, 8)), "b_out": np.zeros(8)}}
        tree = {"embed": np.zeros((12, 8)), "pos_embed": np.zeros((8, 8)), "blocks": [block],
                "ln_final": {"scale": np.ones(8), "bias": np.zeros(8)},
                "unembed": np.zeros((12, 8))}
        return __import__("jax").tree.map(lambda x: np.asarray(x, np.float32), tree)
    for step in (1, 2):
        save_checkpoint(sys.argv[1], params(step), config, None, step)
"""


def saves_killed_at(tmp_path: Path, point: str) -> Path:
    folder = tmp_path / "checkpoint"
    done = run_python(TWO_SAVES.replace("sys.argv[1]", repr(str(folder))), f"{point}#2")
    assert done.returncode == faults.KILLED, done.stderr[-2000:]
    return folder


@pytest.mark.parametrize(
    ("point", "left"),
    [
        ("checkpoint-written", ["checkpoint", "tmp"]),  # the new copy is complete, unswapped
        ("checkpoint-moved-aside", ["old", "tmp"]),  # between the two renames: no checkpoint/
        ("checkpoint-swapped", ["checkpoint", "old"]),  # the old copy not yet deleted
    ],
)
def test_a_kill_at_any_point_of_a_save_leaves_the_newest_complete_checkpoint(tmp_path, point,
                                                                             left):  # fmt: skip
    folder = saves_killed_at(tmp_path, point)
    kinds = sorted(p.name.split(".")[-1].split("-")[0] if p.name.startswith(".") else p.name
                   for p in tmp_path.iterdir())  # fmt: skip
    assert kinds == left
    assert has_checkpoint(folder)
    loaded = load_checkpoint(folder)  # the new save is complete in every case
    assert loaded.step == 2 and float(loaded.params["blocks"][0]["attn"]["w_qkv"][0, 0]) == 2.0
    # the next save finishes the interrupted one and deletes what it left
    save_checkpoint(folder, loaded.params, loaded.config, None, 3)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint"]
    assert load_checkpoint(folder).step == 3


def test_a_stale_folder_from_a_reused_pid_does_not_break_saves(tmp_path):
    """Temp names are random: a `.checkpoint.old-<our pid>` left by an earlier process
    whose id this one reuses (a container restarted) neither blocks a save nor stays."""
    params = init_params(TINY, jax.random.key(0))
    save_checkpoint(tmp_path / "checkpoint", params, TINY, None, 1)
    for kind in ("old", "tmp"):
        stale = tmp_path / f".checkpoint.{kind}-{os.getpid()}"
        stale.mkdir()
        (stale / "params.npz").write_bytes(b"\0" * 1000)  # half-written, no config.json
    save_checkpoint(tmp_path / "checkpoint", params, TINY, None, 2)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint"]
    assert load_checkpoint(tmp_path / "checkpoint").step == 2


def test_save_flushes_files_and_folders_to_disk_before_and_after_the_swap(tmp_path,
                                                                          monkeypatch):  # fmt: skip
    """The order that survives a power cut: every file of the new copy and its folder are
    fsynced before the renames, and the parent folder after them."""
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")),
                                                 real_fsync(fd)))  # fmt: skip
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to name the synced files")
    save_checkpoint(tmp_path / "checkpoint", init_params(TINY, jax.random.key(0)), TINY, None, 1)
    names = [Path(p).name.split("-")[0] for p in synced]
    assert names[:2] == ["params.npz", "config.json"]  # the data, then the file marking it whole
    assert names[2] == ".checkpoint.tmp" and Path(synced[-1]) == tmp_path  # folder, then parent


def test_json_is_never_half_written(tmp_path):
    """A kill while metrics.json is rewritten (the CLI's final rewrite uses write_json)
    leaves the previous content whole."""
    path = tmp_path / "metrics.json"
    code = f"""
        from minitf.checkpoint import write_json
        write_json({str(path)!r}, {{"history": {{"step": [1, 2, 3]}}}})
        write_json({str(path)!r}, {{"history": {{"step": list(range(10**6))}}}})
    """
    done = run_python(code, "file-written#2")
    assert done.returncode == faults.KILLED, done.stderr[-2000:]
    assert json.loads(path.read_text(encoding="utf-8")) == {"history": {"step": [1, 2, 3]}}
    assert len(list(tmp_path.glob(".metrics.json.tmp-*"))) == 1  # the killed write's temp
    with claim(tmp_path, resume=True, overwrite=False):  # the next run in the folder
        assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK, "metrics.json"]


def test_resume_after_a_kill_between_the_renames_is_bit_identical(tmp_path):
    """Killed during the second checkpoint save (steps 8 of 12), at the worst moment: the
    run resumes from the complete new copy and ends exactly as an uninterrupted run."""
    settings = dict(steps=12, batch_size=16, lr=3e-3, seed=5, progress=False)
    code = f"""
        from minitf.tasks import addition, config_for
        from minitf.train import train
        task = addition(2)
        config = config_for(task, n_layer=1, n_head=2, d_model=32, d_mlp=64)
        train(config, task, **{settings!r}, out={str(tmp_path)!r}, checkpoint_every=4)
    """
    done = run_python(code, "checkpoint-moved-aside#2")
    assert done.returncode == faults.KILLED, done.stderr[-2000:]
    assert not (tmp_path / "checkpoint").exists()  # killed between the renames
    with pytest.warns(UserWarning, match="took over the lock"):  # the killed run's lock
        resumed = train(TINY, TASK, **settings, out=tmp_path, resume=True, checkpoint_every=4)
    straight = train(TINY, TASK, **settings)
    assert resumed.history["loss"] == straight.history["loss"]  # metrics.json kept all 8 steps
    for a, b in zip(jax.tree.leaves(straight.params), jax.tree.leaves(resumed.params),
                    strict=True):  # fmt: skip
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_resume_refuses_a_damaged_history(tmp_path):
    settings = dict(steps=4, batch_size=8, lr=3e-3, seed=0, progress=False, out=tmp_path)
    train(TINY, TASK, **settings, callback=lambda step, params: step >= 2)  # stops at 2
    metrics = tmp_path / "metrics.json"
    metrics.write_text(metrics.read_text(encoding="utf-8")[:50], encoding="utf-8")  # cut short
    damaged = metrics.read_bytes()
    with pytest.raises(ValueError, match=r"metrics.json is damaged .* would replace the record "
                       r"of its first 2 steps; restore it, or move it aside"):  # fmt: skip
        train(TINY, TASK, **settings, resume=True)
    assert metrics.read_bytes() == damaged  # left as it was, for the user to restore


# --- a run folder is not overwritten, and one run writes it at a time ---------------------


def test_a_fresh_run_refuses_a_folder_that_holds_one(tmp_path):
    settings = dict(steps=2, batch_size=8, lr=3e-3, seed=0, progress=False, out=tmp_path)
    train(TINY, TASK, **settings)
    before = (tmp_path / "checkpoint" / "params.npz").read_bytes()
    with pytest.raises(ValueError, match=r"already holds a run \(a checkpoint at step 2\); use "
                       r"--resume to continue it or --overwrite to start over"):  # fmt: skip
        train(TINY, TASK, **{**settings, "seed": 1})
    assert (tmp_path / "checkpoint" / "params.npz").read_bytes() == before
    assert train(TINY, TASK, **{**settings, "seed": 1}, overwrite=True).step == 2
    assert (tmp_path / "checkpoint" / "params.npz").read_bytes() != before


def test_the_lock_refuses_a_live_run_and_is_released_after(tmp_path):
    with claim(tmp_path, resume=False, overwrite=False):
        owner = json.loads((tmp_path / LOCK).read_text(encoding="utf-8"))
        assert (owner["pid"], owner["host"]) == (os.getpid(), socket.gethostname())
        with pytest.raises(ValueError, match=rf"in use by another run \(process {os.getpid()} "
                           rf"on {socket.gethostname()}, started "):  # fmt: skip
            train(TINY, TASK, steps=1, batch_size=8, progress=False, out=tmp_path)
    assert not (tmp_path / LOCK).exists()
    train(TINY, TASK, steps=1, batch_size=8, progress=False, out=tmp_path)
    assert not (tmp_path / LOCK).exists()


def test_two_commands_on_one_folder_at_once_the_second_is_refused(tmp_path):
    """While one process holds the folder, `minitf train --out` in another says so in one
    line, before any training."""
    with claim(tmp_path, resume=False, overwrite=False):
        done = subprocess.run(
            [sys.executable, "-m", "minitf", "train", "copy", "--steps", "5", "--out",
             str(tmp_path), "--no-progress"],
            env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "is in use by another run" in done.stderr
    assert not has_checkpoint(tmp_path / "checkpoint")


def write_lock(folder: Path, pid: int, host: str | None = None, process: str | None = None):
    folder.mkdir(parents=True, exist_ok=True)
    lock = {"pid": pid, "host": host or socket.gethostname(), "started": "2024-01-01 00:00:00",
            "process": process, "path": str(folder / LOCK)}  # fmt: skip
    (folder / LOCK).write_text(json.dumps(lock), encoding="utf-8")


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_stale_lock_is_taken_over_with_a_warning(tmp_path):
    write_lock(tmp_path, dead_pid())
    with pytest.warns(UserWarning, match=r"took over the lock of a run that is no longer "
                      r"running \(process \d+ on "):  # fmt: skip
        train(TINY, TASK, steps=1, batch_size=8, progress=False, out=tmp_path)
    assert not (tmp_path / LOCK).exists()


def test_a_lock_whose_pid_was_reused_is_stale(tmp_path):
    """The pid is alive, but it is another process than the one that wrote the lock (its
    start time differs), as after a container restart."""
    if _process_id(os.getpid()) is None:
        pytest.skip("needs Linux's /proc to tell processes with the same id apart")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_lock(tmp_path, sleeper.pid, process="another-boot:12345")
        with pytest.warns(UserWarning, match="took over the lock"):
            train(TINY, TASK, steps=1, batch_size=8, progress=False, out=tmp_path)
        write_lock(tmp_path, sleeper.pid, process=_process_id(sleeper.pid))  # really it
        with pytest.raises(ValueError, match=f"in use by another run .process {sleeper.pid} "):
            train(TINY, TASK, steps=1, batch_size=8, progress=False, out=tmp_path,
                  overwrite=True)  # fmt: skip
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_lock_from_another_host_is_refused_with_what_to_do(tmp_path):
    write_lock(tmp_path, 1, host="some-other-machine")
    with pytest.raises(ValueError, match=r"process 1 on some-other-machine.*if that run is "
                       r"gone, delete .*\.minitf-lock"):  # fmt: skip
        train(TINY, TASK, steps=1, batch_size=8, progress=False, out=tmp_path)


def test_lesson_cache_saves_from_two_processes_at_once_stay_whole(tmp_path):
    """Two lessons filling the same cached model at the same moment: the saves take turns
    (a lock on the folder), so the cache ends complete and loadable."""
    folder = tmp_path / "cache" / "checkpoint"
    code = TWO_SAVES.replace("sys.argv[1]", repr(str(folder))).replace(
        "for step in (1, 2):", "for step in range(1, 30):")  # fmt: skip
    script = tmp_path / "saves.py"
    script.write_text(textwrap.dedent(code), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    runs = [subprocess.Popen([sys.executable, str(script)], env=env, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]  # fmt: skip
    errors = [run.communicate(timeout=300)[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], errors
    assert [p.name for p in folder.parent.iterdir()] == ["checkpoint"]
    assert load_checkpoint(folder).step == 29
