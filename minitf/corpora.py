"""Where training text comes from: a UTF-8 file of yours, or the documentation in Python.

A `Corpus` is a UTF-8 file on disk with a name, a size and a SHA-256 hash; the hash is
what the tokenised copy in the cache is keyed by, and what a checkpoint records.

- `file_corpus(path)`: any UTF-8 text file (tinyshakespeare, a book, your notes). It is
  checked once, in one streaming pass: it must exist, be non-empty and be UTF-8 (the
  error names the offset of the first byte that isn't).
- `python_docs()`: English prose that every Python install carries, so `minitf train
  text` needs no download. It is read from *your* Python, not shipped with minitf: the
  reference manual's topics in the standard library's `pydoc_data` package (what
  `help("for")` prints), then the docstrings of the standard library's own modules
  (every `.py` file under the stdlib folder, sorted by path; tests, idlelib, lib2to3,
  turtledemo and site-packages left out), each docstring as `inspect.cleandoc` leaves
  it, in source order, separated by blank lines. Python 3.11.7 gives 2.1 MB (0.47 MB of
  topics, 1.65 MB of docstrings). A Python without `pydoc_data` (some distributions
  strip it) gives the docstrings alone, and `Corpus.note` says so. The same Python
  always gives the same text; it is built once (about 5 s) and kept in the cache.

Left out: downloading anything, and other encodings (convert to UTF-8 first).
"""

from __future__ import annotations

import ast
import codecs
import dataclasses
import hashlib
import os
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

from minitf.long_text import not_utf8

PYTHON_DOCS = "python-docs"  # the built-in corpus's name (`--corpus` left out)
# folders of the standard library whose files are not documentation of the library itself
STDLIB_SKIP = frozenset({"test", "tests", "idlelib", "lib2to3", "turtledemo", "site-packages",
                         "dist-packages", "__pycache__"})  # fmt: skip
HASH_BLOCK = 1 << 22  # bytes read at a time while checking and hashing a file


@dataclasses.dataclass(frozen=True)
class Corpus:
    """A UTF-8 text file to train on, and what identifies its contents."""

    name: str  # "python-docs", or the file's name
    path: Path  # the file itself (the built-in corpus: its copy in the cache)
    n_bytes: int  # size in bytes
    sha256: str  # hex digest of the bytes: the cache key, recorded in checkpoints
    source: str  # where the text came from, in words
    note: str = ""  # one line to tell the user, if anything is unusual (a fallback)

    def describe(self) -> dict:
        """The JSON-ready record a checkpoint keeps (the path is not part of it)."""
        return {"name": self.name, "n_bytes": self.n_bytes, "sha256": self.sha256,
                "source": self.source}  # fmt: skip


def cache_dir() -> Path:
    """minitf's cache: `$MINITF_CACHE`, else ~/.cache/minitf (tokenised corpora, lesson models)."""
    folder = Path(os.environ.get("MINITF_CACHE", Path.home() / ".cache" / "minitf"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def file_corpus(path: str | os.PathLike, *, name: str | None = None, source: str | None = None,
                note: str = "") -> Corpus:  # fmt: skip
    """Check a text file (exists, not empty, UTF-8) and hash it, in one streaming pass."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"corpus file {path} does not exist; give the path of a "
                                "UTF-8 text file, or leave out --corpus for Python's docs")
    if not path.is_file():
        raise ValueError(f"corpus {path} is not a file; give the path of a UTF-8 text file")
    digest, decoder, offset = hashlib.sha256(), codecs.getincrementaldecoder("utf-8")(), 0
    with open(path, "rb") as f:
        while block := f.read(HASH_BLOCK):
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(block)
            except UnicodeDecodeError as err:
                raise not_utf8(path, offset - pending + err.start) from None
            digest.update(block)
            offset += len(block)
    if offset == 0:
        raise ValueError(f"corpus file {path} is empty; give a file with some text in it")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as err:  # the file ends in the middle of a character
        raise not_utf8(path, offset - len(decoder.getstate()[0]) + err.start) from None
    return Corpus(name=name or path.name, path=path.resolve(), n_bytes=offset,
                  sha256=digest.hexdigest(), source=source or str(path.resolve()),
                  note=note)  # fmt: skip


# --- the built-in corpus: Python's documentation -------------------------------------------


def python_docs() -> Corpus:
    """The built-in corpus (see the module docstring), built once and then read from the cache."""
    files = stdlib_files()
    topics = _topics_file()
    # what the text depends on: this Python, and every file it is read from (sizes, times)
    stamp = hashlib.sha256(sys.version.encode())
    for f in ([topics] if topics else []) + files:
        st = f.stat()
        stamp.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    path = cache_dir() / "corpora" / f"{PYTHON_DOCS}-{stamp.hexdigest()[:16]}.txt"
    version = sys.version.split()[0]
    source = (f"Python {version}'s pydoc_data topics and the docstrings of its standard "
              f"library ({len(files)} files)")  # fmt: skip
    note = ""
    if topics is None:
        source = f"the docstrings of Python {version}'s standard library ({len(files)} files)"
        note = ("this Python has no pydoc_data (some distributions strip it), so the corpus "
                "is the standard library's docstrings alone")  # fmt: skip
    if not path.is_file():
        text = python_docs_text(files)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    return file_corpus(path, name=PYTHON_DOCS, source=source, note=note)


def python_docs_text(files: list[Path] | None = None) -> str:
    """The built-in corpus's text: pydoc_data's topics (sorted by name), then docstrings."""
    parts = []
    try:
        from pydoc_data.topics import topics
    except ImportError:
        topics = {}
    parts += [topics[name].strip() for name in sorted(topics)]
    for path in stdlib_files() if files is None else files:
        parts += docstrings(path)
    return "\n\n".join(part for part in parts if part) + "\n"


def stdlib_files() -> list[Path]:
    """The standard library's `.py` files, sorted by path, without tests and tools."""
    root = Path(sysconfig.get_paths()["stdlib"])
    found = (p for p in root.rglob("*.py") if not STDLIB_SKIP & set(p.relative_to(root).parts))
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _topics_file() -> Path | None:
    try:
        import pydoc_data.topics
    except ImportError:
        return None
    return Path(pydoc_data.topics.__file__)


def docstrings(path: Path) -> list[str]:
    """The docstrings of a Python file, module first, then classes and functions in source order.

    The file is parsed, never imported (importing runs code). A file that doesn't parse
    gives none.
    """
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError):
        return []
    return list(_docstrings_in(tree))


def _docstrings_in(node: ast.AST) -> Iterator[str]:
    if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
        doc = ast.get_docstring(node, clean=True)
        if doc:
            yield doc
    for child in ast.iter_child_nodes(node):
        yield from _docstrings_in(child)
