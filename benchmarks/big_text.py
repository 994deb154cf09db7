"""Helpers for the memory benchmarks: a big UTF-8 text file, and a command's peak memory.

`make_big_text(path, n_bytes)` writes real, varied text: the Python standard library's
`.py` sources (sorted by path), then tinyshakespeare where ../shared has it, repeated
until the file has `n_bytes` bytes (cut at the end of a line). Code has many more
distinct pre-split chunks than prose, so this is a hard case for BPE's chunk counts.
`peak_rss(argv)` runs a command in its own process and returns its wall time and its
peak resident set size in MB (Linux: /proc/PID/status).
"""

from __future__ import annotations

import subprocess
import sysconfig
import tempfile
import time
from pathlib import Path

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


def make_big_text(path: Path, n_bytes: int) -> Path:
    """Write at least `n_bytes` bytes of text to `path` (reused if it is already there)."""
    if path.is_file() and path.stat().st_size >= n_bytes:
        return path
    root = Path(sysconfig.get_paths()["stdlib"])
    sources = sorted(root.rglob("*.py"), key=lambda p: p.relative_to(root).as_posix())
    if SHAKESPEARE.is_file():
        sources.append(SHAKESPEARE)
    written = 0
    with open(path, "w", encoding="utf-8") as out:
        while written < n_bytes:
            for source in sources:
                try:
                    text = source.read_text(encoding="utf-8")
                except (UnicodeDecodeError, OSError):
                    continue
                out.write(text)
                written += len(text.encode("utf-8"))
                if written >= n_bytes:
                    break
    return path


def peak_rss(argv: list[str], env: dict | None = None) -> tuple[float, float, int]:
    """Run argv; -> (wall seconds, peak resident memory in MB, exit code).

    The peak is the child's own high-water mark, VmHWM in /proc/PID/status, read every
    20 ms while it runs (it only ever grows, so the last reading is the peak unless the
    peak came in the last 20 ms). Not `wait4`'s ru_maxrss: Linux carries that across
    fork + exec, so it would report this (big) Python process's own size.
    """
    start = time.perf_counter()
    peak_kb = 0
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: progress bars can't block it
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=err)
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak_kb = max(peak_kb, int(line.split()[1]))
            except (OSError, ValueError):  # the process is just ending
                pass
            time.sleep(0.02)
        if proc.returncode:
            err.seek(0)
            print(err.read().decode("utf-8", "replace")[-2000:])
    return time.perf_counter() - start, peak_kb / 1024, proc.returncode
