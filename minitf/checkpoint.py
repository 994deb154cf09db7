"""Checkpoints: a folder of `.npz` arrays named by pytree path, plus a `config.json`.

    run/
      params.npz      one array per parameter, named like `blocks.0.attn.w_qkv`
      opt_state.npz   the optimizer's state (Adam moments, step count), named the same way
      config.json     model config, step, seed, task and tokenizer: everything to rebuild
      data.npz        (optional) arrays the task needs, e.g. a text model's validation tokens

No pickles: a checkpoint is plain arrays and JSON that any program can read. Writing is
crash-safe: everything goes into a hidden folder beside the target, is flushed to the
disk, and is then renamed into place, so a kill (or a power cut) at any moment leaves a
complete checkpoint that `load_checkpoint` finds (see the comment above `save_checkpoint`).
Left out: sharded or asynchronous saving (for models far bigger than these).
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import os
import shutil
import uuid
import warnings
import zipfile
from pathlib import Path

import jax
import numpy as np

from minitf import faults
from minitf.bpe import Tokenizer as BPETokenizer
from minitf.chars import CharTokenizer
from minitf.model import Config, Params, init_params
from minitf.tokens import TokenizerLike
from minitf.words import WordTokenizer

FORMAT = "minitf-checkpoint-1"  # written into config.json; a folder without it is foreign
CHECKPOINT_DIR = "checkpoint"  # a training run's folder keeps its checkpoint in here


@dataclasses.dataclass
class Checkpoint:
    """What `load_checkpoint` returns."""

    params: Params  # the model's parameter pytree (numpy arrays)
    config: Config
    tokenizer: TokenizerLike | None  # CharTokenizer (toy tasks), WordTokenizer or bpe.Tokenizer
    step: int  # optimizer steps taken
    opt_state: dict[str, np.ndarray] | None  # flat {path: array}; see `unflatten`
    task: dict | None  # {"name": ..., **spec}: minitf.tasks.make_task(**task) rebuilds it
    meta: dict  # everything else in config.json (seed, training settings)
    folder: Path | None = None  # where it was read from
    data: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # data.npz, if any


# --- pytrees <-> flat {name: array} ------------------------------------------------------


def _key_name(key) -> str:
    for attr in ("key", "idx", "name"):  # DictKey, SequenceKey/FlattenedIndexKey, GetAttrKey
        if hasattr(key, attr):
            return str(getattr(key, attr))
    raise ValueError(f"cannot name pytree key {key!r}")


def flatten(tree) -> dict[str, np.ndarray]:
    """A pytree -> {"blocks.0.attn.w_qkv": array, ...}, names joined with dots."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {".".join(_key_name(k) for k in path): np.asarray(x) for path, x in leaves}


def unflatten(template, flat: dict[str, np.ndarray], what: str = "arrays"):
    """Fill a template pytree (arrays or ShapeDtypeStructs) with the arrays named like it.

    Names, shapes and dtypes must match exactly; anything else means the file belongs to
    a different model or optimizer, and the error says which array differs.
    """
    paths, treedef = jax.tree_util.tree_flatten_with_path(template)
    names = [".".join(_key_name(k) for k in path) for path, _ in paths]
    missing, extra = sorted(set(names) - set(flat)), sorted(set(flat) - set(names))
    if missing or extra:
        raise ValueError(
            f"the checkpoint's {what} do not match the model: missing {missing[:5]}, "
            f"unexpected {extra[:5]}; was it written for a different config?"
        )
    leaves = []
    for name, (_, want) in zip(names, paths, strict=True):
        got = flat[name]
        if got.shape != want.shape or got.dtype != want.dtype:
            raise ValueError(
                f"{what} {name} has shape {got.shape} {got.dtype} in the checkpoint but "
                f"the model expects {want.shape} {want.dtype}"
            )
        leaves.append(got)
    return jax.tree_util.tree_unflatten(treedef, leaves)


# --- tokenizers in config.json -------------------------------------------------------------

# every tokenizer kind a checkpoint can hold (minitf.tokens.TokenizerLike.kind -> class)
TOKENIZERS = {cls.kind: cls for cls in (CharTokenizer, WordTokenizer, BPETokenizer)}


def _load_tokenizer(description: dict | None, folder: Path) -> TokenizerLike | None:
    if description is None:
        return None
    kind = description.get("kind") if isinstance(description, dict) else None
    if kind not in TOKENIZERS:
        raise ValueError(
            f"{folder / 'config.json'} describes an unknown tokenizer {description!r}; "
            f"known kinds: {sorted(TOKENIZERS)}"
        )
    return TOKENIZERS[kind].from_description(description, folder)


# --- save and load --------------------------------------------------------------------------
#
# A save writes everything into a hidden folder beside the target, `.NAME.tmp-TAG`, with
# config.json last (so a folder that has a valid config.json is complete), flushes it to
# the disk (fsync), and then swaps it in with two renames: NAME -> `.NAME.old-TAG`, then
# the new one -> NAME. A kill between the two renames leaves no NAME, but two complete
# hidden copies: `load_checkpoint` then reads the newest complete copy, and the next save
# finishes the swap and deletes what killed saves left behind. TAG is random, so names
# never collide, not even with a folder left by a process whose id was later reused.
# Saves and loads take a lock on the folder that holds the checkpoint, so two processes
# saving the same checkpoint (two lessons sharing a cached model) take turns.

TMP, OLD = "tmp", "old"  # the two kinds of hidden copy: a new save, a replaced checkpoint


def save_checkpoint(
    folder: str | os.PathLike,
    params: Params,
    config: Config,
    tokenizer: TokenizerLike | None = None,
    step: int = 0,
    opt_state=None,
    *,
    task: dict | None = None,
    meta: dict | None = None,
    data: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write a checkpoint folder atomically (temp folder + rename); returns its path.

    `task` is the task's {"name": ..., **spec}; `meta` any JSON-ready extras (seed, lr);
    `data` arrays the task needs later (saved as data.npz). An existing checkpoint at
    `folder` is replaced only once the new one is complete and on the disk; a kill at any
    moment leaves a checkpoint that `load_checkpoint` reads.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    params, opt_state = jax.device_get((params, opt_state))  # before the lock: may be slow
    with _locked(folder, exclusive=True):
        _finish_interrupted_save(folder)
        tag = uuid.uuid4().hex[:12]
        tmp, old = _hidden(folder, TMP, tag), _hidden(folder, OLD, tag)
        try:
            tmp.mkdir()
            _write_npz(tmp / "params.npz", flatten(params))
            if opt_state is not None:
                _write_npz(tmp / "opt_state.npz", flatten(opt_state))
            if data:
                _write_npz(tmp / "data.npz", {name: np.asarray(x) for name, x in data.items()})
            description = {
                "format": FORMAT,
                "config": config.to_dict(),
                "step": int(step),
                "task": task,
                "tokenizer": None if tokenizer is None else tokenizer.describe(tmp),
                "meta": meta or {},
            }
            for path in tmp.iterdir():  # what describe() wrote, e.g. a tokenizer file
                _fsync(path)
            # config.json last: a folder whose config.json is valid is a complete checkpoint
            _write_text(tmp / "config.json", json.dumps(description, indent=2))
            _fsync(tmp)
            faults.point("checkpoint-written")
            if folder.exists():
                folder.rename(old)
            faults.point("checkpoint-moved-aside")
            tmp.rename(folder)
            _fsync(folder.parent)  # the renames themselves survive a power cut
            faults.point("checkpoint-swapped")
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            if old.exists() and not folder.exists():
                old.rename(folder)  # put the previous checkpoint back
            raise
    return folder


def _hidden(folder: Path, kind: str, tag: str) -> Path:
    return folder.parent / f".{folder.name}.{kind}-{tag}"


def _copies(folder: Path) -> list[Path]:
    """`folder` (if it exists) and the hidden copies killed saves left, newest first.

    Newest by the time config.json was written; on a tie (coarse file-system clocks) a
    new save beats the checkpoint, which beats one it was replacing.
    """
    rank = {TMP: 2, OLD: 0}
    found = []
    candidates = [(folder, 1)] + [(path, rank[kind]) for path, kind in _hidden_copies(folder)]
    for path, order in candidates:
        try:
            found.append(((path / "config.json").stat().st_mtime_ns, order, path))
        except OSError:
            continue  # no config.json: not a complete checkpoint
    return [path for *_, path in sorted(found, reverse=True)]


def _hidden_copies(folder: Path) -> list[tuple[Path, str]]:
    """The hidden folders saves of `folder` made, each with its kind (TMP or OLD)."""
    if not folder.parent.is_dir():
        return []
    found = []
    for path in folder.parent.glob(f".{glob.escape(folder.name)}.*-*"):
        kind = path.name[len(folder.name) + 2 :].split("-", 1)[0]
        if kind in (TMP, OLD) and path.is_dir():
            found.append((path, kind))
    return found


def has_checkpoint(folder: str | os.PathLike) -> bool:
    """True when `folder`, or a copy a killed save left beside it, holds a checkpoint."""
    return bool(_copies(Path(folder)))


def _finish_interrupted_save(folder: Path) -> None:
    """Put the newest complete copy in place as `folder` and delete the other copies.

    Runs under the exclusive lock, so no other save is writing any of them.
    """
    copies = [p for p in _copies(folder) if _is_complete(p)]
    if copies and copies[0] != folder:
        aside = _hidden(folder, OLD, uuid.uuid4().hex[:12])
        if folder.exists():
            folder.rename(aside)
        copies[0].rename(folder)
        _fsync(folder.parent)
    for path, _ in _hidden_copies(folder):
        shutil.rmtree(path, ignore_errors=True)


def _is_complete(folder: Path) -> bool:
    try:
        with open(folder / "config.json", encoding="utf-8") as f:
            return json.load(f).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


@contextlib.contextmanager
def _locked(folder: Path, *, exclusive: bool):
    """Lock the folder that holds `folder` (shared for reading, exclusive for writing).

    An advisory `flock` on the parent folder itself, so no lock file is left behind, and
    the operating system releases it when the process dies: a killed save never leaves a
    stale lock. Where there is no `fcntl` (Windows) nothing is locked.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    fd = os.open(folder.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _fsync(path: Path) -> None:
    """Flush a file, or a folder's list of names, from the OS's cache to the disk."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # Windows can't open a folder; its renames need no fsync there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems can't fsync a folder; the data files are already synced
    finally:
        os.close(fd)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        raise ValueError(
            f"{path} is damaged or not a minitf checkpoint ({err}); re-run training or "
            "point to an intact checkpoint folder"
        ) from err


def load_checkpoint(folder: str | os.PathLike) -> Checkpoint:
    """Read a folder written by `save_checkpoint`, checking it against its own config.

    When a kill interrupted a save, reads the newest complete copy it left beside
    `folder` (see the comment above `save_checkpoint`).
    """
    folder = Path(folder)
    missing = FileNotFoundError(f"no checkpoint at {folder}: {folder / 'config.json'} does "
                                "not exist (train one with `minitf train TASK --out DIR`)")
    if not folder.parent.is_dir():
        raise missing
    with _locked(folder, exclusive=False):
        copies = _copies(folder)
        if not copies:
            raise missing
        # copies newer than the checkpoint itself may be tried and skipped; the checkpoint
        # (or, without one, the oldest copy) is read last, and its damage is reported
        last = copies.index(folder) if folder in copies else len(copies) - 1
        for path in copies[:last]:
            with contextlib.suppress(ValueError):
                return _read_checkpoint(path)
        return _read_checkpoint(copies[last])


def _read_checkpoint(folder: Path) -> Checkpoint:
    config_path = folder / "config.json"
    try:
        with open(config_path, encoding="utf-8") as f:
            description = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(
            f"{config_path} is not valid JSON ({err}); the checkpoint is damaged"
        ) from err
    if not isinstance(description, dict) or description.get("format") != FORMAT:
        raise ValueError(f"{folder} is not a minitf checkpoint ({config_path} lacks {FORMAT!r})")
    try:
        config = Config.from_dict(description["config"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{config_path}: its 'config' is damaged ({err})") from None
    step, task, meta = (description.get(key) for key in ("step", "task", "meta"))
    if not _is_count(step):
        raise ValueError(f"{config_path}: 'step' must be a whole number >= 0; got {step!r}")
    if task is not None and not (isinstance(task, dict) and isinstance(task.get("name"), str)):
        raise ValueError(
            f"{config_path}: 'task' must be null or an object with a \"name\"; got {task!r}"
        )
    if meta is not None and not isinstance(meta, dict):
        raise ValueError(f"{config_path}: 'meta' must be an object; got {meta!r}")
    # the shapes the config implies, without computing any random numbers
    template = jax.eval_shape(lambda key: init_params(config, key), jax.random.key(0))
    flat = _read_npz(folder / "params.npz")
    params = unflatten(template, flat, "params")
    warn_if_not_finite(flat, folder / "params.npz")
    opt_path, data_path = folder / "opt_state.npz", folder / "data.npz"
    opt_state = _read_npz(opt_path) if opt_path.exists() else None
    try:
        tokenizer = _load_tokenizer(description.get("tokenizer"), folder)
    except (KeyError, TypeError) as err:
        raise ValueError(f"{config_path}: its 'tokenizer' is damaged ({err!r})") from None
    return Checkpoint(params=params, config=config, tokenizer=tokenizer, step=step,
                      opt_state=opt_state, task=task, meta=meta or {}, folder=folder,
                      data=_read_npz(data_path) if data_path.exists() else {})  # fmt: skip


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def warn_if_not_finite(arrays: dict[str, np.ndarray], path: Path,
                       why: str = " (was it saved from a run that diverged?)") -> None:
    """A model with NaN or infinite weights computes NaN: say which tensors, by name."""
    bad = [name for name, x in arrays.items()
           if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all()]  # fmt: skip
    if bad:
        names = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        warnings.warn(
            f"{path}: {names} {'holds' if len(bad) == 1 else 'hold'} NaN or infinite values, "
            f"so the model's outputs will be NaN{why}",
            stacklevel=3,
        )


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write `data` (text as UTF-8) to `path` so that nobody ever sees half a file.

    The bytes go to a temp file beside `path`, are flushed to the disk, and the temp file
    is renamed over `path`: a reader, a kill or a full disk leaves the old content or the
    new one, also after a power cut. An existing file keeps its permissions. Everything
    minitf writes for a user (run records, pages, the course's files) goes through here.
    """
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:12]}")
    try:
        with open(tmp, "xb") as f:
            os.chmod(tmp, mode)
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        faults.point("file-written")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync(path.parent)
    return path


def write_json(path: str | os.PathLike, data: dict | list) -> None:
    """Write JSON atomically (`write_atomic`), making the folder if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(data, indent=1))
