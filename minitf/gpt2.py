"""Load GPT-2-format weights from a Hugging Face folder on disk into minitf's params.

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
downloaded: point `load` at a folder you already have. Left out: other architectures
(GPT-Neo, GPT-J, ...), sharded checkpoints, and `pytorch_model.bin` pickles.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from minitf.model import LN_EPS, Config, Params

WEIGHTS_FILE = "model.safetensors"
ACTIVATION = "gelu_new"  # HF's name for GELU with the tanh approximation, minitf's GELU
# buffers some GPT-2 files carry: the causal mask, not weights (minitf builds its own)
IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")


def read_config(folder: Path) -> Config:
    """`config.json` -> a minitf Config; anything not GPT-2 is a ValueError."""
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
    return Config(vocab_size=sizes["vocab_size"], n_layer=sizes["n_layer"],
                  n_head=sizes["n_head"], d_model=sizes["n_embd"], d_mlp=d_mlp,
                  max_len=sizes["n_positions"], tie_embeddings=tied)  # fmt: skip


def _names(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


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
    bad = [name for name, value in tensors.items() if not np.isfinite(value).all()]
    if bad:
        warnings.warn(
            f"{path}: {_names(bad)} {'holds' if len(bad) == 1 else 'hold'} NaN or infinite "
            "values, so the model's outputs will be NaN",
            stacklevel=3,
        )
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


def read_tokenizer(folder: Path, config: Config) -> Any:
    """`vocab.json` + `merges.txt` -> a minitf BPE Tokenizer, or None if they are absent."""
    if not ((folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()):
        return None
    try:
        from minitf.bpe import Tokenizer
    except ImportError as err:
        warnings.warn(
            f"{folder} has vocab.json and merges.txt, but minitf.bpe cannot be imported "
            f"({err}); loading the model without its tokenizer",
            stacklevel=3,
        )
        return None
    tokenizer = Tokenizer.from_gpt2(folder)
    if tokenizer.vocab_size > config.vocab_size:
        raise ValueError(
            f"the tokenizer has {tokenizer.vocab_size} tokens but the model only "
            f"{config.vocab_size} embedding rows; the files do not belong together"
        )
    return tokenizer


def load(folder: str | Path) -> tuple[Config, Params, Any]:
    """Read a Hugging Face GPT-2 folder -> (config, params, tokenizer or None).

    Needs `config.json` and `model.safetensors`; `vocab.json` + `merges.txt` give the
    tokenizer. Float16 weights are converted to float32, minitf's dtype.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(
            f"{folder} is not a folder; load() reads GPT-2 files already on disk and never "
            "downloads (save one with GPT2LMHeadModel.save_pretrained(folder))"
        )
    config = read_config(folder)
    tensors = read_tensors(folder)
    if "lm_head.weight" in tensors and config.tie_embeddings:
        # some exports store the tied matrix twice; different values mean it is not tied
        if not np.array_equal(tensors["lm_head.weight"], tensors.get("wte.weight")):
            raise ValueError(
                "config.json says tie_word_embeddings but lm_head.weight differs from "
                "wte.weight; set tie_word_embeddings to false in config.json"
            )
    params = to_params(tensors, config)
    return config, params, read_tokenizer(folder, config)
