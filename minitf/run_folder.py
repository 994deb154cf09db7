"""A run's output folder: one run writes it at a time, and nothing in it is replaced unasked.

    out/
      checkpoint/    the latest checkpoint (minitf.checkpoint)
      metrics.json   the settings and the history, written with every checkpoint
      loss.png       the loss curve, at the end
      .minitf-lock   while a run writes here: its process id, host and start time

`claim(out, ...)` runs before any training starts. It refuses a folder that already holds
a run unless the run is resumed or the caller asked to overwrite it; it checks that the
folder can be written and has room for the checkpoints, so a read-only folder, a file in
the way or a full disk is found in a second and not at the first save after a whole run;
and it holds the lock while the run writes. A lock left by a process that is gone
(killed, or its container restarted) is taken over with a warning; one held by a live
process, or by a process on another host (which can't be checked from here), is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

from minitf.checkpoint import CHECKPOINT_DIR, has_checkpoint

METRICS = "metrics.json"
LOCK = ".minitf-lock"


@contextlib.contextmanager
def claim(out: Path, *, resume: bool, overwrite: bool, needs_bytes: int = 0) -> Iterator[None]:
    """Check `out` for a run, make it, lock it while the block runs (see the module doc).

    `needs_bytes`: the disk space the run's files take (two checkpoints while a save
    replaces one); less free space than that is refused up front.
    """
    if not resume and not overwrite:
        _refuse_if_holds_a_run(out)
    out.mkdir(parents=True, exist_ok=True)  # a file in the way: FileExistsError naming it
    lock = _take_lock(out)
    try:
        for debris in out.glob(f".{METRICS}.tmp-*"):  # a killed write's; nobody else writes here
            debris.unlink(missing_ok=True)
        free = shutil.disk_usage(out).free
        if free < needs_bytes:
            raise ValueError(
                f"{out} has {_mb(free)} free but this run's checkpoints need about "
                f"{_mb(needs_bytes)}; free some space or choose another --out folder"
            )
        yield
    finally:
        _release_lock(lock)


def holds_run(out: Path) -> str | None:
    """What of a run `out` holds ("a checkpoint at step 20", "a metrics.json"), or None."""
    if has_checkpoint(out / CHECKPOINT_DIR):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            config = json.loads((out / CHECKPOINT_DIR / "config.json").read_text("utf-8"))
            return f"a checkpoint at step {config['step']}"
        return "a checkpoint"
    return f"a {METRICS}" if (out / METRICS).is_file() else None


def _refuse_if_holds_a_run(out: Path) -> None:
    what = holds_run(out)
    if what:
        raise ValueError(
            f"{out} already holds a run ({what}); use --resume to continue it or --overwrite "
            "to start over (resume=True or overwrite=True in Python), or choose another "
            "--out folder"
        )


def _mb(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:,.0f} MB"


# --- the lock ---------------------------------------------------------------------------


def _take_lock(out: Path) -> dict:
    """Create out/.minitf-lock for this process, taking over a stale one; -> its content."""
    path = out / LOCK
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "process": _process_id(os.getpid()),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"), "path": str(path)}  # fmt: skip
    for _ in range(3):  # a lock taken over from a dead process can be raced for; retry
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            _take_over_if_stale(path)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(mine, f)
        return mine
    raise ValueError(f"could not lock {out}: another run keeps taking {path}")


def _take_over_if_stale(path: Path) -> None:
    """Remove a lock whose owner is gone (with a warning); refuse one that is alive."""
    try:
        owner = json.loads(path.read_text(encoding="utf-8"))
        pid, host = int(owner["pid"]), str(owner["host"])
        started, process = owner.get("started", "?"), owner.get("process")
    except FileNotFoundError:
        return  # released meanwhile: try again
    except (OSError, ValueError, KeyError, TypeError):
        pid, host, started, process = None, None, "?", None  # unreadable: a killed writer
    who = f"process {pid} on {host}, started {started}"
    if host is not None and host != socket.gethostname():
        raise ValueError(
            f"{path.parent} is in use by another run ({who}); wait for it to finish or "
            f"choose another --out folder; if that run is gone, delete {path}"
        )
    if pid is not None and _alive(pid, process):
        raise ValueError(
            f"{path.parent} is in use by another run ({who}); wait for it to finish or "
            "choose another --out folder"
        )
    stale = path.with_name(f"{LOCK}.stale-{uuid.uuid4().hex[:12]}")
    try:
        path.rename(stale)  # atomic: of two processes taking over, one wins
    except FileNotFoundError:
        return
    stale.unlink()
    warnings.warn(
        f"{path.parent}: took over the lock of a run that is no longer running ({who})",
        stacklevel=4,
    )


def _release_lock(mine: dict) -> None:
    path = Path(mine["path"])
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text(encoding="utf-8")) == mine:
            path.unlink()


def _alive(pid: int, process: str | None) -> bool:
    """Is process `pid` (on this host) still the one that wrote the lock?

    A process id alone can be reused (after a reboot, or in a container restarted with
    its own process ids), so on Linux the lock also records the boot and the process's
    start time, and a different one means the writer is gone.
    """
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, but belongs to another user
    now = _process_id(pid)
    return process is None or now is None or now == process


def _process_id(pid: int) -> str | None:
    """'boot id:start time' of a process on Linux (unique across reboots); None elsewhere."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return f"{boot}:{stat.rpartition(')')[2].split()[19]}"  # field 22: start time in ticks
