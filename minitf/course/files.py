"""Writing files for students and teachers without ever losing their work.

Everything the course writes goes through `write_atomic`: the text goes to a temp file in
the same folder, which is then renamed over the target, so a reader (or a kill, or a full
disk) never leaves half a file. `output_folder` turns "that path is a file" or "that
folder is read-only" into one sentence, and `free_path` finds the next unused name, so a
file somebody made is never overwritten.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: str | bytes) -> Path:
    """Write `data` to `path` through a temp file + rename (text as UTF-8); return `path`."""
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644  # mkstemp's is 0o600
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def output_folder(folder: Path, what: str) -> Path:
    """Create `folder` if needed and check it can be written; ValueError with one sentence
    naming the path if it is a file or not writable. `what` names it, e.g. "--out"."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{what} {folder} is a file, not a folder: give a folder to write into")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=folder, prefix=".minitf-probe-")
        probe.close()
    except PermissionError:
        raise ValueError(
            f"{what} {folder} is not writable (permission denied): choose a folder you can "
            "write to") from None
    except NotADirectoryError:
        raise ValueError(
            f"{what} {folder} lies inside a file, not a folder: give a folder to write into"
        ) from None
    except OSError as err:
        raise ValueError(f"{what} {folder} can't be written ({err.strerror})") from None
    return folder


def free_path(path: Path) -> Path:
    """`path` if nothing is there, else the first unused `NAME-2.ext`, `NAME-3.ext`, ..."""
    path = Path(path)
    stem, suffix = path.stem, path.suffix
    candidate, n = path, 2
    while candidate.exists():
        candidate = path.with_name(f"{stem}-{n}{suffix}")
        n += 1
    return candidate
