"""Checkpoints: a folder of `.npz` arrays named by pytree path, plus a `config.json`.

    run/
      params.npz      one array per parameter, named like `blocks.0.attn.w_qkv`
      opt_state.npz   the optimizer's state (Adam moments, step count), named the same way
      config.json     model config, step, seed, task and tokenizer: everything to rebuild

No pickles: a checkpoint is plain arrays and JSON that any program can read. Writing is
atomic: everything goes into a temporary folder beside the target, which is then
renamed into place, so a crash mid-write leaves the previous checkpoint intact.
Left out: sharded or asynchronous saving (for models far bigger than these).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import zipfile
from pathlib import Path

import jax
import numpy as np

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
) -> Path:
    """Write a checkpoint folder atomically (temp folder + rename); returns its path.

    `task` is the task's {"name": ..., **spec}; `meta` any JSON-ready extras (seed, lr).
    An existing checkpoint at `folder` is replaced only once the new one is complete.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}"
    old = folder.parent / f".{folder.name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        np.savez(tmp / "params.npz", **flatten(jax.device_get(params)))
        if opt_state is not None:
            np.savez(tmp / "opt_state.npz", **flatten(jax.device_get(opt_state)))
        description = {
            "format": FORMAT,
            "config": config.to_dict(),
            "step": int(step),
            "task": task,
            "tokenizer": None if tokenizer is None else tokenizer.describe(tmp),
            "meta": meta or {},
        }
        with open(tmp / "config.json", "w", encoding="utf-8") as f:
            json.dump(description, f, indent=2)
        # swap in: the old folder moves aside, the new one takes its name, the old one goes
        if folder.exists():
            folder.rename(old)
        tmp.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not folder.exists():
            old.rename(folder)  # put the previous checkpoint back
        raise
    return folder


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
    """Read a folder written by `save_checkpoint`, checking it against its own config."""
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(
            f"no checkpoint at {folder}: {config_path} does not exist (train one with "
            "`minitf train TASK --out DIR`)"
        )
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
        step = int(description["step"])
    except (KeyError, TypeError) as err:
        raise ValueError(
            f"{config_path} is incomplete ({err!r}); the checkpoint is damaged"
        ) from err
    # the shapes the config implies, without computing any random numbers
    template = jax.eval_shape(lambda key: init_params(config, key), jax.random.key(0))
    params = unflatten(template, _read_npz(folder / "params.npz"), "params")
    opt_path = folder / "opt_state.npz"
    opt_state = _read_npz(opt_path) if opt_path.exists() else None
    return Checkpoint(
        params=params,
        config=config,
        tokenizer=_load_tokenizer(description.get("tokenizer"), folder),
        step=step,
        opt_state=opt_state,
        task=description.get("task"),
        meta=description.get("meta", {}),
    )


def write_json(path: str | os.PathLike, data: dict) -> None:
    """Write JSON through a temp file + rename, so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)
