"""Plain data to and from a file, without pickle: hidden cases and graded outputs.

Grading moves data three ways: hidden cases into the teacher's folder, their inputs into
the process that runs a submission, and the submission's outputs back. The last one comes
from code the grader must not trust, so nothing here can run code when it is read: the
file is an `.npz` (read with `allow_pickle=False`) holding the arrays, plus one entry with
the structure as tagged JSON: `{"list": [...]}`, `{"tuple": [...]}`, `{"dict": [[k, v],
...]}`, `{"set": [...]}`, `{"bytes": base64}`, `{"array": i, "kind": "numpy"|"jax"}`,
`{"none": null}`; numbers, bools and strings as themselves. Frozen dataclasses of minitf
(a model `Config`) are written by their fields and rebuilt only where the reader asks for
it (`rebuild=True`, for inputs read from the teacher's own files).

Left out: any other object. Encoding one raises TypeError, which grading reports as
"returned a ... that the grader can't read".
"""

from __future__ import annotations

import base64
import dataclasses
import importlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from minitf.course.files import write_atomic

TREE_KEY = "__tree__"
DATACLASS_MODULES = ("minitf.",)  # where rebuilt dataclasses may come from


def encode(value: Any) -> tuple[Any, list[np.ndarray]]:
    """(tagged JSON structure, arrays) for a value made of plain data and arrays."""
    arrays: list[np.ndarray] = []

    def walk(x: Any) -> Any:
        if x is None:
            return {"none": None}
        if type(x) in (bool, int, float, str):
            return x
        if isinstance(x, bytes | bytearray):
            return {"bytes": base64.b64encode(bytes(x)).decode("ascii")}
        if isinstance(x, np.generic):
            return walk(x.item()) if x.dtype.kind in "biuf" else _array(np.asarray(x), "numpy")
        if isinstance(x, np.ndarray):
            return _array(x, "numpy")
        if type(x).__module__.startswith(("jax", "jaxlib")) and hasattr(x, "__array__"):
            return _array(np.asarray(x), "jax")
        if isinstance(x, tuple):
            return {"tuple": [walk(v) for v in x]}
        if isinstance(x, list):
            return {"list": [walk(v) for v in x]}
        if isinstance(x, dict):
            return {"dict": [[walk(k), walk(v)] for k, v in x.items()]}
        if isinstance(x, set | frozenset):
            return {"set": [walk(v) for v in x]}
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            cls = type(x)
            fields = {f.name: walk(getattr(x, f.name)) for f in dataclasses.fields(x)}
            return {"dataclass": f"{cls.__module__}:{cls.__qualname__}", "fields": fields}
        if isinstance(x, int | float | str):  # a subclass (an IntEnum, ...): by its value
            return walk(_plain(x))
        raise TypeError(f"a {type(x).__name__}")

    def _array(a: np.ndarray, kind: str) -> dict:
        if a.dtype.kind not in "biufcUS":
            raise TypeError(f"an array of {a.dtype} values")
        arrays.append(a)
        return {"array": len(arrays) - 1, "kind": kind}

    return walk(value), arrays


def _plain(x: int | float | str) -> int | float | str:
    for kind in (bool, int, float, str):
        if isinstance(x, kind):
            return kind(x)
    raise TypeError(f"a {type(x).__name__}")


def decode(tree: Any, arrays: list[np.ndarray], *, rebuild: bool = False) -> Any:
    """The value `encode` described, with numpy arrays. `rebuild=True` (for a function's
    inputs, read from the teacher's own files) turns jax arrays back into jax arrays and
    rebuilds minitf dataclasses."""

    def walk(x: Any) -> Any:
        if not isinstance(x, dict):
            return x
        if "array" in x:
            a = arrays[x["array"]]
            if rebuild and x.get("kind") == "jax":
                import jax.numpy as jnp

                return jnp.asarray(a)
            return a
        if "dataclass" in x and rebuild:
            module, _, name = x["dataclass"].partition(":")
            if not module.startswith(DATACLASS_MODULES):
                raise ValueError(f"refusing to rebuild {x['dataclass']}: not a minitf dataclass")
            cls = getattr(importlib.import_module(module), name)
            return cls(**{k: walk(v) for k, v in x["fields"].items()})
        if len(x) != 1:
            raise ValueError(f"unreadable data: an entry with keys {sorted(x)[:3]}")
        ((tag, body),) = x.items()
        if tag == "none":
            return None
        if tag == "bytes":
            return base64.b64decode(body)
        if tag == "tuple":
            return tuple(walk(v) for v in body)
        if tag == "list":
            return [walk(v) for v in body]
        if tag == "dict":
            return {_hashable(walk(k)): walk(v) for k, v in body}
        if tag == "set":
            return {_hashable(walk(v)) for v in body}
        raise ValueError(f"unreadable data: an entry tagged {tag!r}")

    return walk(tree)


def _hashable(x: Any) -> Any:
    return x.tobytes() if isinstance(x, np.ndarray) else x


def dumps(value: Any) -> bytes:
    """`value` as the bytes of an .npz file."""
    tree, arrays = encode(value)
    buffer = io.BytesIO()
    entries = {f"a{i}": a for i, a in enumerate(arrays)}
    entries[TREE_KEY] = np.frombuffer(json.dumps(tree).encode("utf-8"), dtype=np.uint8)
    np.savez(buffer, **entries)
    return buffer.getvalue()


def loads(data: bytes, *, rebuild: bool = False) -> Any:
    """The value in the bytes of an .npz file that `dumps` wrote."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        if TREE_KEY not in npz.files:
            raise ValueError("not a minitf data file (no structure entry)")
        tree = json.loads(npz[TREE_KEY].tobytes().decode("utf-8"))
        arrays = [npz[f"a{i}"] for i in range(len(npz.files) - 1)]
    return decode(tree, arrays, rebuild=rebuild)


def save(path: Path, value: Any) -> Path:
    """Write `value` to `path` (atomically)."""
    return write_atomic(Path(path), dumps(value))


def load(path: Path, *, rebuild: bool = False) -> Any:
    """Read the value `save` wrote to `path`."""
    return loads(Path(path).read_bytes(), rebuild=rebuild)
