"""Helpers for the memory benchmarks: a big UTF-8 text file, and a command's peak memory.

`make_big_text(path, n_bytes)` writes real, varied text: the Python standard library's
`.py` sources (sorted by path), then tinyshakespeare where ../shared has it, repeated
until the file has `n_bytes` bytes (cut at the end of a line). Code has many more
distinct pre-split chunks than prose, so this is a hard case for BPE's chunk counts.
`peak_rss(argv)` runs a command in its own process and returns its wall time and the
largest resident set size the kernel saw (`wait4`'s rusage), in MB.
"""

from __future__ import annotations

import os
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
    """Run argv; -> (wall seconds, peak resident memory in MB, exit code)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: progress bars can't block it
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code:
            err.seek(0)
            print(err.read().decode("utf-8", "replace")[-2000:])
    return time.perf_counter() - start, usage.ru_maxrss / 1024, code  # ru_maxrss is in KB
