"""Direct logit attribution: which parts of the model wrote a token's logit?

The final residual is a sum: token embedding + position embedding + every attention
block's output + every MLP's output. Each attention output is itself a sum over heads
(head h's mixed values `z_h` times its own rows of `w_out`) plus a bias. The logit of a
token is `layer_norm(resid) @ W_U[token]`. Layer norm is not linear, but it almost is: it
subtracts the mean (linear) and divides by the standard deviation (a single number per
position). Freezing that number at its value on the final residual makes the readout
linear, so the logit splits exactly into one piece per component, plus the norm's bias:

    logit = sum_c  ((c - mean(c)) / std(final resid) * scale) @ W_U[token]  +  bias @ W_U[token]

Left out: indirect effects (a head that changes what a later head reads gets no credit
here; that needs activation patching), and the MLP's output split into neurons.

Shape letters as in `minitf.model`: L n_layer, T sequence, D d_model, H heads, K head dim.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from minitf.model import LN_EPS, Config, Params, forward, unembed_matrix
from minitf.tokens import display_token


@dataclasses.dataclass
class Attribution:
    """Each component's direct push on one token's logit at one position.

    `values` sum to `logit`, the model's own logit for that token (up to float error).
    """

    labels: list[str]  # component names in residual order: 'embed', 'pos_embed', '0.attn.h1', ...
    values: np.ndarray  # (C,): each component's contribution to the logit
    logit: float  # the model's final logit for the token
    token_id: int
    position: int
    token: str  # the token as displayed

    def by_block(self) -> dict[str, float]:
        """Heads and bias of each attention block summed into one number: '0.attn', '0.mlp'."""
        totals: dict[str, float] = {}
        for label, value in zip(self.labels, self.values, strict=True):
            key = ".".join(label.split(".")[:2])  # '0.attn.h1' -> '0.attn'
            totals[key] = totals.get(key, 0.0) + float(value)
        return totals

    def plot(self, path: str | Path | None = None, *, title: str | None = None):
        """Bar chart, one bar per component in residual order. Returns the Figure."""
        from minitf.plots import plot_logit_attribution  # matplotlib only when drawing

        return plot_logit_attribution(
            self.labels,
            self.values,
            token=self.token,
            position=self.position,
            logit=self.logit,
            path=path,
            title=title,
        )


def direct_logit_attribution(
    params: Params,
    config: Config,
    tokens,
    token_id: int,
    position: int = -1,
    *,
    tokenizer: Any = None,
) -> Attribution:
    """Split the logit of `token_id` after `position` into one term per model component.

    [T] int tokens -> Attribution with one value per component: embed, pos_embed, per block
    each attention head and the attention bias, the MLP; and the final norm's bias.
    The lesson "What attention learned" explains it and averages it over many addition
    problems.
    """
    tokens = jnp.asarray(tokens)
    if tokens.ndim != 1:
        raise ValueError(f"tokens must be one 1-D sequence; got shape {tokens.shape}")
    T = tokens.shape[0]
    if not -T <= position < T:
        raise ValueError(
            f"position {position} is outside the sequence of {T} tokens; "
            f"use 0..{T - 1} (or -1 for the last)"
        )
    if not 0 <= token_id < config.vocab_size:
        raise ValueError(
            f"token_id {token_id} is not in the vocabulary; use an id in 0..{config.vocab_size - 1}"
        )
    values, logit = _attribute(params, tokens, config, token_id, position % T)  # (C,), ()
    labels = ["embed", "pos_embed"]
    for l in range(config.n_layer):
        labels += [f"{l}.attn.h{h}" for h in range(config.n_head)]
        labels += [f"{l}.attn.bias", f"{l}.mlp"]
    return Attribution(
        labels=labels + ["ln_final.bias"],
        values=np.asarray(values),
        logit=float(logit),
        token_id=int(token_id),
        position=position % T,
        token=display_token(tokenizer, token_id),
    )


@functools.partial(jax.jit, static_argnames="config")
def _attribute(
    params: Params, tokens: jax.Array, config: Config, token_id: jax.Array, t: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """The computation behind `direct_logit_attribution`: [T] tokens -> values [C], logit."""
    logits, acts = forward(params, tokens[None], config, cache=True)  # (1, T, V), activations

    # the components that add up to the final residual at position t, each (D,)
    parts = [params["embed"][tokens[t]], params["pos_embed"][t]]
    for l, block in enumerate(params["blocks"]):
        z = acts[f"blocks.{l}.attn_z"][0, t]  # (H, K): each head's mixed values
        H, K = z.shape
        w_out = block["attn"]["w_out"].reshape(H, K, config.d_model)  # (H, K, D): rows per head
        heads = jnp.einsum("hk,hkd->hd", z, w_out)  # (H, D): what each head writes
        parts += list(heads) + [block["attn"]["b_out"], acts[f"blocks.{l}.mlp_out"][0, t]]
    components = jnp.stack(parts)  # (C-1, D)

    # freeze the final norm's division at its value on the real final residual
    final = acts[f"blocks.{config.n_layer - 1}.resid_post"][0, t]  # (D,)
    inv_std = 1.0 / jnp.sqrt(final.var() + LN_EPS)  # scalar
    ln = params["ln_final"]
    direction = unembed_matrix(params, config)[token_id]  # (D,): the token's unembedding row
    # centering is linear, so each component is centered on its own
    centered = components - components.mean(axis=-1, keepdims=True)  # (C-1, D)
    values = (centered * inv_std * ln["scale"][None]) @ direction  # (C-1,)
    bias = ln["bias"] @ direction  # scalar: the norm's bias, read by the unembedding
    return jnp.append(values, bias), logits[0, t, token_id]  # (C,), scalar
