"""Writing files for students and teachers without ever losing their work.

Everything the course writes goes through the library's `write_atomic`
(`minitf.checkpoint`): the text goes to a temp file in the same folder, which is then
renamed over the target, so a reader (or a kill, or a full disk) never leaves half a
file. `output_folder` turns "that path is a file" or "that
folder is read-only" into one sentence, and `free_path` finds the next unused name, so a
file somebody made is never overwritten.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from minitf.checkpoint import write_atomic

__all__ = ["free_path", "output_folder", "write_atomic"]


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
