"""GPT-2-format folders on disk: load one into minitf's params, or export a minitf model.

minitf's model is GPT-2's architecture, so a trained GPT-2 (or any model saved by
`transformers`' `GPT2LMHeadModel`) maps onto `init_params`' pytree one matrix at a time:

    HF name (GPT2LMHeadModel)           minitf                         shape
    transformer.wte.weight              embed                          (V, D)
    transformer.wpe.weight              pos_embed                      (max_len, D)
    transformer.h.{i}.ln_1.weight/bias  blocks[i].ln1.scale/bias       (D,)
    transformer.h.{i}.attn.c_attn.*     blocks[i].attn.w_qkv/b_qkv     (D, 3D), (3D,)
    transformer.h.{i}.attn.c_proj.*     blocks[i].attn.w_out/b_out     (D, D), (D,)
    transformer.h.{i}.ln_2.*            blocks[i].ln2.*                (D,)
    transformer.h.{i}.mlp.c_fc.*        blocks[i].mlp.w_in/b_in        (D, M), (M,)
    transformer.h.{i}.mlp.c_proj.*      blocks[i].mlp.w_out/b_out      (M, D), (D,)
    transformer.ln_f.*                  ln_final.*                     (D,)
    lm_head.weight (absent when tied)   unembed                        (V, D)

GPT-2's `Conv1D` layers store weights as (in, out) and compute `x @ W + b`, exactly
minitf's layout, so nothing is transposed. OpenAI's original upload names the tensors
without the `transformer.` prefix; both spellings load. Reading uses the `safetensors`
package's numpy API (an optional extra: `pip install safetensors`). Nothing is ever
downloaded: point `load` at a folder you already have.

`export` writes the same table the other way, so a model you trained opens in
`transformers` (`GPT2LMHeadModel.from_pretrained(folder)`) and the interpretability
libraries built on it. What `transformers` cannot read (a character or word tokenizer,
the toy task) goes into config.json under "minitf", where `load` finds it again.
Left out: other architectures (GPT-Neo, GPT-J, ...), sharded checkpoints, and
`pytorch_model.bin` pickles.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from minitf.bpe import GPT2_PATTERN
from minitf.bpe import Tokenizer as BPETokenizer
from minitf.checkpoint import (
    CHECKPOINT_DIR,
    TOKENIZERS,
    Checkpoint,
    has_checkpoint,
    load_checkpoint,
    warn_if_not_finite,
)
from minitf.model import LN_EPS, Config, Params
from minitf.tokens import TokenizerLike

WEIGHTS_FILE = "model.safetensors"
ACTIVATION = "gelu_new"  # HF's name for GELU with the tanh approximation, minitf's GELU
# buffers some GPT-2 files carry: the causal mask, not weights (minitf builds its own)
IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")
MINITF_KEY = "minitf"  # config.json entry for what only minitf reads: tokenizer, task


def read_config(folder: Path) -> tuple[Config, dict]:
    """`config.json` -> (a minitf Config, the whole file, whose "minitf" entry an export
    wrote); anything not GPT-2 is a ValueError."""
    path = folder / "config.json"
    if not path.is_file():
        raise ValueError(
            f"{folder} has no config.json; point load() at a Hugging Face model folder"
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}); is the file damaged?") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path} should be one JSON object of settings; got a "
                         f"{type(raw).__name__}")  # fmt: skip
    model_type = raw.get("model_type")
    if model_type != "gpt2":
        raise ValueError(
            f"config.json says model_type={model_type!r}; minitf loads only 'gpt2' "
            "(GPT-2 architecture) folders"
        )
    # settings minitf's model has one fixed value for: a file with another can't be loaded
    for key, expected, reason in (
        ("activation_function", ACTIVATION, "minitf implements only GPT-2's tanh-approximated "
         "GELU, so these weights would compute something else"),
        ("layer_norm_epsilon", LN_EPS, "minitf's LayerNorm uses GPT-2's; convert only models "
         "trained with that epsilon"),
    ):  # fmt: skip
        value = raw.get(key, expected)
        if value != expected:
            raise ValueError(f"config.json's {key} is {value!r}, not {expected!r}: {reason}")
    if raw.get("scale_attn_by_inverse_layer_idx") or not raw.get("scale_attn_weights", True):
        raise ValueError(
            "this GPT-2 variant scales attention differently (scale_attn_weights / "
            "scale_attn_by_inverse_layer_idx); minitf scales by 1/sqrt(head width) only"
        )
    required = ("vocab_size", "n_layer", "n_head", "n_embd")
    for key in required:
        if key not in raw:
            raise ValueError(f"{path} lacks the GPT-2 field {key!r}; is it a GPT-2 config?")
    sizes = {key: raw[key] for key in required}
    sizes["n_positions"] = raw.get("n_positions", raw.get("n_ctx"))
    for key, value in sizes.items():
        if not _is_size(value):
            raise ValueError(f"{path}: {key} must be a positive whole number; got {value!r}")
    d_mlp = raw.get("n_inner") or 4 * sizes["n_embd"]  # null means GPT-2's 4 * n_embd
    if not _is_size(d_mlp):
        raise ValueError(f"{path}: n_inner must be null or a positive whole number; got "
                         f"{d_mlp!r}")  # fmt: skip
    tied = raw.get("tie_word_embeddings", True)
    if not isinstance(tied, bool):  # the string "false" would otherwise count as true
        raise ValueError(f"{path}: tie_word_embeddings must be true or false (a JSON "
                         f"boolean, no quotes); got {tied!r}")  # fmt: skip
    config = Config(vocab_size=sizes["vocab_size"], n_layer=sizes["n_layer"],
                    n_head=sizes["n_head"], d_model=sizes["n_embd"], d_mlp=d_mlp,
                    max_len=sizes["n_positions"], tie_embeddings=tied)  # fmt: skip
    return config, raw


def _is_size(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def read_tensors(folder: Path) -> dict[str, np.ndarray]:
    """`model.safetensors` -> {name: float32 array}, names without the `transformer.` prefix."""
    path = folder / WEIGHTS_FILE
    if not path.is_file():
        found = sorted(p.name for p in folder.iterdir())
        raise ValueError(
            f"{folder} has no {WEIGHTS_FILE} (found {found}); save the model with "
            "save_pretrained(folder) (safetensors is its default format)"
        )
    try:
        from safetensors.numpy import load_file  # optional extra, only this module needs it
    except ImportError:
        raise ImportError(
            "reading GPT-2 weights needs the safetensors package: pip install safetensors "
            '(or pip install -e ".[gpt2]")'
        ) from None
    from safetensors import SafetensorError

    try:
        tensors = load_file(str(path))
    except (TypeError, ValueError) as err:  # e.g. bfloat16, which numpy has no dtype for
        raise ValueError(
            f"cannot read {path} with numpy ({err}); save the model in float32 or float16"
        ) from None
    except SafetensorError as err:  # empty, cut short, or not a safetensors file at all
        raise ValueError(
            f"{path} is damaged or not a safetensors file ({err}); save the model again "
            "with save_pretrained(folder)"
        ) from None
    tensors = {
        name.removeprefix("transformer."): value.astype(np.float32)
        for name, value in tensors.items()
        if not name.endswith(IGNORED_SUFFIXES)
    }
    warn_if_not_finite(tensors, path, why="")
    return tensors


def to_params(tensors: dict[str, np.ndarray], config: Config) -> Params:
    """Arrange HF tensors into minitf's pytree, checking every name and shape."""
    D, M, V = config.d_model, config.d_mlp, config.vocab_size
    used: set[str] = set()

    def take(name: str, shape: tuple[int, ...]) -> jnp.ndarray:
        if name not in tensors:
            raise ValueError(
                f"the weights lack {name!r}; expected a GPT2LMHeadModel saved by "
                f"transformers (found e.g. {sorted(tensors)[:4]})"
            )
        value = tensors[name]
        if value.shape != shape:
            raise ValueError(
                f"{name} has shape {value.shape} but config.json implies {shape}; the "
                "weights and config.json do not belong together"
            )
        used.add(name)
        return jnp.asarray(value)

    def norm(prefix: str) -> dict:
        return {"scale": take(f"{prefix}.weight", (D,)), "bias": take(f"{prefix}.bias", (D,))}

    params: Params = {
        "embed": take("wte.weight", (V, D)),  # (V, D)
        "pos_embed": take("wpe.weight", (config.max_len, D)),  # (max_len, D)
        "blocks": [],
        "ln_final": norm("ln_f"),
    }
    for i in range(config.n_layer):
        h = f"h.{i}"
        params["blocks"].append(
            {
                "ln1": norm(f"{h}.ln_1"),
                "attn": {
                    "w_qkv": take(f"{h}.attn.c_attn.weight", (D, 3 * D)),  # (D, 3D)
                    "b_qkv": take(f"{h}.attn.c_attn.bias", (3 * D,)),  # (3D,)
                    "w_out": take(f"{h}.attn.c_proj.weight", (D, D)),  # (D, D)
                    "b_out": take(f"{h}.attn.c_proj.bias", (D,)),  # (D,)
                },
                "ln2": norm(f"{h}.ln_2"),
                "mlp": {
                    "w_in": take(f"{h}.mlp.c_fc.weight", (D, M)),  # (D, M)
                    "b_in": take(f"{h}.mlp.c_fc.bias", (M,)),  # (M,)
                    "w_out": take(f"{h}.mlp.c_proj.weight", (M, D)),  # (M, D)
                    "b_out": take(f"{h}.mlp.c_proj.bias", (D,)),  # (D,)
                },
            }
        )
    if not config.tie_embeddings:
        params["unembed"] = take("lm_head.weight", (V, D))  # (V, D)
    unknown = sorted(set(tensors) - used - {"lm_head.weight"})
    if unknown:
        raise ValueError(
            f"the weights hold tensors a GPT-2 of this config does not have: {unknown[:5]}; "
            "is config.json's n_layer right, or is this another architecture?"
        )
    return params


def read_tokenizer(folder: Path, config: Config, raw: dict | None = None) -> TokenizerLike | None:
    """The folder's tokenizer, or None: `vocab.json` + `merges.txt` (byte-level BPE), or
    the character/word tokenizer that `export` kept in config.json's "minitf" entry."""
    kept = (raw or {}).get(MINITF_KEY, {}).get("tokenizer") or {}
    if kept.get("kind") in ("chars", "words"):  # small enough to live in config.json
        return TOKENIZERS[kept["kind"]].from_description(kept, folder)
    if not ((folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()):
        return None
    # the files do not say how text is pre-split: GPT-2's pattern unless export noted another
    tokenizer = BPETokenizer.from_gpt2(folder, pattern=kept.get("pattern", "gpt2"))
    if tokenizer.vocab_size > config.vocab_size:
        raise ValueError(
            f"the tokenizer has {tokenizer.vocab_size} tokens but the model only "
            f"{config.vocab_size} embedding rows; the files do not belong together"
        )
    return tokenizer


def load(folder: str | Path) -> tuple[Config, Params, TokenizerLike | None]:
    """Read a Hugging Face GPT-2 folder -> (config, params, tokenizer or None).

    Needs `config.json` and `model.safetensors`; `vocab.json` + `merges.txt` give the
    tokenizer (an `export` of a character or word tokenizer keeps it in config.json).
    Float16 weights are converted to float32, minitf's dtype.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(
            f"{folder} is not a folder; load() reads GPT-2 files already on disk and never "
            "downloads (save one with GPT2LMHeadModel.save_pretrained(folder))"
        )
    config, raw = read_config(folder)
    tensors = read_tensors(folder)
    if "lm_head.weight" in tensors and config.tie_embeddings:
        # some exports store the tied matrix twice; different values mean it is not tied
        if not np.array_equal(tensors["lm_head.weight"], tensors.get("wte.weight")):
            raise ValueError(
                "config.json says tie_word_embeddings but lm_head.weight differs from "
                "wte.weight; set tie_word_embeddings to false in config.json"
            )
    params = to_params(tensors, config)
    return config, params, read_tokenizer(folder, config, raw)


def is_gpt2_folder(folder: str | Path) -> bool:
    """Does `folder` hold a GPT-2-format model (config.json with model_type "gpt2")?"""
    path = Path(folder) / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("model_type") == "gpt2"
    except (OSError, ValueError, AttributeError):  # absent, not JSON, or not an object
        return False


def load_model(path: str | Path) -> Checkpoint:
    """Any folder the commands take a model from: a training run (its checkpoint/ inside),
    a minitf checkpoint, or a GPT-2-format folder (read like a checkpoint at step 0)."""
    path = Path(path)
    if not (path / "config.json").exists() and has_checkpoint(path / CHECKPOINT_DIR):
        path = path / CHECKPOINT_DIR  # a run folder: use the checkpoint (or a killed save's)
    return load_as_checkpoint(path) if is_gpt2_folder(path) else load_checkpoint(path)


def load_as_checkpoint(folder: str | Path) -> Checkpoint:
    """`load`, wrapped like `minitf.checkpoint.load_checkpoint`'s answer (step 0, no
    optimizer state), so the commands read a GPT-2 folder as they read a checkpoint."""
    config, params, tokenizer = load(folder)
    raw = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    task = raw.get(MINITF_KEY, {}).get("task")
    return Checkpoint(params=params, config=config, tokenizer=tokenizer, step=0,
                      opt_state=None, task=task, meta={"gpt2_folder": str(folder)},
                      folder=Path(folder))  # fmt: skip


# --- export: a minitf model -> a GPT-2 folder ------------------------------------------


# HF name inside `transformer.h.{i}.` -> where the block's array sits in minitf's pytree
BLOCK_NAMES = {
    "ln_1.weight": ("ln1", "scale"), "ln_1.bias": ("ln1", "bias"),
    "attn.c_attn.weight": ("attn", "w_qkv"), "attn.c_attn.bias": ("attn", "b_qkv"),
    "attn.c_proj.weight": ("attn", "w_out"), "attn.c_proj.bias": ("attn", "b_out"),
    "ln_2.weight": ("ln2", "scale"), "ln_2.bias": ("ln2", "bias"),
    "mlp.c_fc.weight": ("mlp", "w_in"), "mlp.c_fc.bias": ("mlp", "b_in"),
    "mlp.c_proj.weight": ("mlp", "w_out"), "mlp.c_proj.bias": ("mlp", "b_out"),
}  # fmt: skip


def to_tensors(params: Params, config: Config) -> dict[str, np.ndarray]:
    """minitf's pytree -> {HF name: float32 array}: the table above, read right to left."""
    tensors = {
        "transformer.wte.weight": params["embed"],  # (V, D)
        "transformer.wpe.weight": params["pos_embed"],  # (max_len, D)
        "transformer.ln_f.weight": params["ln_final"]["scale"],  # (D,)
        "transformer.ln_f.bias": params["ln_final"]["bias"],  # (D,)
    }
    for i, block in enumerate(params["blocks"]):
        for name, (part, leaf) in BLOCK_NAMES.items():
            tensors[f"transformer.h.{i}.{name}"] = block[part][leaf]
    if not config.tie_embeddings:
        tensors["lm_head.weight"] = params["unembed"]  # (V, D); a tied model stores it once
    return {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in tensors.items()}


def hf_config(
    config: Config, tokenizer: TokenizerLike | None = None, task: dict | None = None
) -> dict:
    """The config.json `transformers`' GPT2Config reads, plus minitf's own entry."""
    kind = None if tokenizer is None else tokenizer.kind
    # GPT-2's end-of-text token where the tokenizer has one (transformers' generate uses it)
    end = tokenizer.special_tokens.get("<|endoftext|>") if kind == "bpe" else None
    kept = None  # what transformers' files can't hold: the split regex, a small tokenizer
    if kind == "bpe":
        kept = {"kind": "bpe", "pattern": tokenizer.pattern}
    elif tokenizer is not None:
        kept = tokenizer.describe()  # characters or words: the whole tokenizer
    return {
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "vocab_size": config.vocab_size,
        "n_positions": config.max_len,
        "n_embd": config.d_model,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_inner": config.d_mlp,
        "activation_function": ACTIVATION,
        "layer_norm_epsilon": LN_EPS,
        "tie_word_embeddings": config.tie_embeddings,
        # minitf trains without dropout, so the exported model computes the same in train mode
        "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
        "bos_token_id": end, "eos_token_id": end,
        MINITF_KEY: {"tokenizer": kept, "task": task},
    }  # fmt: skip


def export(
    folder: str | os.PathLike,
    params: Params,
    config: Config,
    tokenizer: TokenizerLike | None = None,
    *,
    task: dict | None = None,
) -> Path:
    """Write a minitf model as a GPT-2 folder: config.json + model.safetensors, and
    vocab.json + merges.txt for a BPE tokenizer. `load(folder)` gives the same arrays back.

    The folder must not exist yet (or be empty): nothing is overwritten. Everything is
    written to a temporary folder first and renamed, so a crash leaves no half export.
    """
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ValueError(
            f"{folder} already exists and is not an empty folder; export into a new folder "
            "(it never overwrites files)"
        )
    try:
        from safetensors.numpy import save_file
    except ImportError:
        raise ImportError(
            "exporting needs the safetensors package: pip install safetensors "
            '(or pip install -e ".[gpt2]")'
        ) from None
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        # "format": "pt" is the metadata transformers checks before it reads the file
        save_file(to_tensors(params, config), str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        raw = hf_config(config, tokenizer, task)
        (tmp / "config.json").write_text(json.dumps(raw, indent=2), encoding="utf-8")
        if raw[MINITF_KEY]["tokenizer"] and raw[MINITF_KEY]["tokenizer"]["kind"] == "bpe":
            tokenizer.save_gpt2(tmp)
        if folder.exists():
            folder.rmdir()  # empty, checked above
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def tokenizer_note(tokenizer: TokenizerLike | None) -> str | None:
    """One line on what `transformers` won't get from an export of a model with this
    tokenizer, and how to encode text for it there; None when nothing is missing."""
    if tokenizer is None:
        return (
            "the model has no tokenizer, so the export has none: feed transformers token "
            "ids directly"
        )
    if tokenizer.kind == "chars":
        example = tokenizer.chars[:4]
        return (
            "the export leaves out the character tokenizer (transformers has no format for "
            f"it; minitf keeps it in config.json): encode text as one id per character, its "
            f"index in {tokenizer.chars!r}, e.g. {example!r} -> {tokenizer.encode(example)}"
        )
    if tokenizer.kind == "words":
        return (
            "the export leaves out the word tokenizer (transformers has no format for it; "
            "minitf keeps it in config.json): encode text as one id per space-separated "
            f"word, its index in the vocabulary {tokenizer.words[:5]}..."
        )

    if tokenizer.pattern not in ("gpt2", GPT2_PATTERN):
        return (
            f"vocab.json and merges.txt are written, but this tokenizer pre-splits text "
            f"with the {tokenizer.pattern!r} pattern and transformers' GPT2Tokenizer with "
            "GPT-2's, so some texts encode differently there: encode them with minitf "
            "(minitf.gpt2.load(folder) gives the tokenizer back)"
        )
    return None
