"""The tuned lens: a learned translation from each layer's residual to the final one's.

The logit lens assumes every layer already speaks the language of the unembedding.
Early layers often don't: their residual holds the information, in a basis the final
readout can't read directly. The tuned lens (Belrose et al., 2023, "Eliciting Latent
Predictions from Transformers with the Tuned Lens") gives each layer l an affine
translator,

    translated = resid + resid @ W_l + b_l,

trained so that the readout of the translated residual matches the model's final
distribution (minimising KL(final || layer)), with the model itself frozen. W and b
start at zero, so an untrained tuned lens is exactly the logit lens. The last row is the
model's own output and is never translated.

`save_tuned_lens` / `load_tuned_lens` keep one beside a checkpoint (`tuned_lens.npz`
inside the checkpoint folder: it belongs to exactly those weights, and goes when a new
checkpoint replaces them).

Left out: the paper's SGD with Nesterov momentum and its learning-rate schedule (Adam
does the job on toy models), and training on anything but the sequences you pass in.

It builds on `minitf.lens`: `tuned_lens` is `logit_lens` with the translators passed as
its `translate`, and training uses `minitf.train.make_step` like every other training.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from minitf.checkpoint import write_atomic
from minitf.lens import LensResult, layer_names, lens_log_probs, logit_lens, residuals
from minitf.model import Config, Params, logits_from_resid
from minitf.tokens import TokenizerLike
from minitf.train import make_step


@jax.tree_util.register_dataclass  # a pytree: jit, grad and optax see its two arrays
@dataclasses.dataclass(frozen=True)
class TunedLens:
    """One affine translator per layer below the last: rows 0..L-1 of the lens."""

    weights: jax.Array  # (L, D, D): W_l, added to the identity
    biases: jax.Array  # (L, D): b_l

    @classmethod
    def identity(cls, config: Config) -> TunedLens:
        """Zero weights and biases: every translator is the identity, so this is the logit lens."""
        L, D = config.n_layer, config.d_model
        return cls(weights=jnp.zeros((L, D, D)), biases=jnp.zeros((L, D)))  # (L, D, D), (L, D)

    def translate(self, resids: jax.Array) -> jax.Array:
        """resid + resid @ W_l + b_l on rows l < L; the last row, the model's own, as is.

        [L+1, ..., D] -> [L+1, ..., D] (the middle axes are batch and positions).
        """
        lower, last = resids[:-1], resids[-1:]  # (L, ..., D), (1, ..., D)
        delta = jnp.einsum("l...d,lde->l...e", lower, self.weights)  # (L, ..., D)
        mid = (1,) * (lower.ndim - 2)  # broadcast b_l over the middle axes, explicitly
        bias = self.biases.reshape(self.biases.shape[0], *mid, -1)  # (L, 1.., D)
        return jnp.concatenate([lower + delta + bias, last])  # (L+1, ..., D)


def tuned_lens(
    params: Params, config: Config, tokens, tuned: TunedLens, *,
    tokenizer: TokenizerLike | None = None,
) -> LensResult:  # fmt: skip
    """The tuned lens for one sequence: [T] int tokens -> LensResult [L+1, T, V]."""
    return logit_lens(params, config, tokens, tokenizer=tokenizer, translate=tuned.translate,
                      name="tuned lens")  # fmt: skip


TUNED_LENS_FILE = "tuned_lens.npz"  # in a checkpoint folder: the tuned lens of those weights


def save_tuned_lens(tuned: TunedLens, path: str | Path) -> Path:
    """Write the translators to one .npz (weights (L, D, D), biases (L, D)); atomic."""
    buffer = io.BytesIO()
    np.savez(buffer, weights=np.asarray(tuned.weights), biases=np.asarray(tuned.biases))
    return write_atomic(path, buffer.getvalue())


def load_tuned_lens(path: str | Path, config: Config) -> TunedLens:
    """Read a file written by `save_tuned_lens`, checking it fits a model of `config`."""
    L, D = config.n_layer, config.d_model
    try:
        with np.load(path, allow_pickle=False) as data:
            weights, biases = data["weights"], data["biases"]
    except (OSError, KeyError, ValueError) as err:
        raise ValueError(f"{path} is not a tuned lens minitf saved ({err}); delete it") from None
    if weights.shape != (L, D, D) or biases.shape != (L, D):
        raise ValueError(
            f"{path} holds a tuned lens for another model (weights {weights.shape}, expected "
            f"{(L, D, D)}); delete it and fit one again"
        )
    return TunedLens(weights=jnp.asarray(weights), biases=jnp.asarray(biases))


def kl_per_layer(log_probs: jax.Array) -> jax.Array:
    """KL(final || layer) in nats, averaged over everything but the layer axis.

    [L+1, ..., V] log-probs whose last row is the model's output -> [L+1]
    """
    final = log_probs[-1:]  # (1, ..., V)
    kl = (jnp.exp(final) * (final - log_probs)).sum(axis=-1)  # (L+1, ...)
    return kl.reshape(kl.shape[0], -1).mean(axis=-1)  # (L+1,)


def lens_kl_per_layer(
    params: Params, config: Config, sequences, tuned: TunedLens | None = None
) -> np.ndarray:
    """Mean KL(final || layer) over a set of sequences, per layer. [N, T] -> [L+1]

    With `tuned`, the layers are read through its translators; without, the logit lens.
    """
    translate = None if tuned is None else tuned.translate
    log_probs = lens_log_probs(params, jnp.asarray(sequences), config, translate)  # (L+1,N,T,V)
    return np.asarray(kl_per_layer(log_probs))  # (L+1,)


def train_tuned_lens(
    params: Params,
    config: Config,
    sequences,
    *,
    steps: int = 300,
    batch_size: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
) -> tuple[TunedLens, np.ndarray]:
    """Fit one translator per layer to the model's final predictions, model frozen.

    `sequences` [N, T] int: the token sequences to learn from (e.g. task batches).
    Returns the TunedLens and the training loss (mean KL over layers 0..L-1) per step.
    The lesson "The logit lens" trains one on the addition model.
    """
    sequences = jnp.asarray(sequences)
    if sequences.ndim != 2 or not jnp.issubdtype(sequences.dtype, jnp.integer):
        raise ValueError(
            f"sequences must be int token ids of shape (N, T); got "
            f"{sequences.dtype} {sequences.shape}. Stack task batches into one array."
        )
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be at least 1; got {steps}, {batch_size}")

    # The model is frozen: run it once and keep every layer's residual.
    resids = residuals(params, sequences, config)  # (L+1, N, T, D)

    def loss(tuned: TunedLens, params: Params, resids_b: jax.Array) -> tuple[jax.Array, None]:
        translated = tuned.translate(resids_b)  # (L+1, b, T, D); the last row untouched
        log_probs = jax.nn.log_softmax(logits_from_resid(params, config, translated))
        # the last row's KL is 0 and has no gradient: average over the L translated rows
        return kl_per_layer(log_probs)[:-1].mean(), None  # scalar

    # gradients for the translators only (the first argument); the model's params ride in
    # the batch and stay fixed
    optimizer = optax.adam(lr)
    step = make_step(loss, optimizer)
    tuned = TunedLens.identity(config)
    opt_state = optimizer.init(tuned)

    rng = np.random.default_rng(seed)
    n = sequences.shape[0]
    losses = []
    for _ in range(steps):
        batch = rng.choice(n, size=min(batch_size, n), replace=False)  # (b,) sequence indices
        tuned, opt_state, value, _ = step(tuned, opt_state, (params, resids[:, batch]))
        losses.append(float(value))
    return tuned, np.array(losses)


def plot_lens_comparison(
    params: Params,
    config: Config,
    sequences,
    tuned: TunedLens,
    path: str | Path | None = None,
):
    """KL-to-final per layer on `sequences` [N, T]: logit lens vs tuned lens.

    -> Figure
    """
    from minitf.plots import plot_kl_per_layer  # matplotlib only when drawing

    curves = {
        "logit lens": lens_kl_per_layer(params, config, sequences),  # (L+1,)
        "tuned lens": lens_kl_per_layer(params, config, sequences, tuned),  # (L+1,)
    }
    return plot_kl_per_layer(curves, layer_names(config.n_layer), path)
