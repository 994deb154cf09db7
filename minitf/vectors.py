"""Reading a residual-stream vector as tokens: which tokens lie nearest under the unembedding.

The lm_head turns a (normed) residual vector `x` into one logit per token, `x . W_U[v]`.
So "which token is this vector closest to" has a natural answer: the tokens with the
largest dot product, the ones the model would predict. That is how a vector that sits
*between* two tokens (a "sea horse emoji" the vocabulary lacks) snaps to the nearest
existing one. Cosine similarity is offered beside it: it ignores how long each token's
row is, which shows direction alone (the dot product is what the model actually uses).
Left out: nearest tokens under the embedding (use `params["embed"]` with `cosine`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from minitf.model import Config, Params, layer_norm, unembed_matrix


def nearest_tokens(
    params: Params,
    config: Config,
    vector: jax.Array,
    k: int = 5,
    *,
    metric: str = "dot",
    final_norm: bool = False,
) -> tuple[jax.Array, jax.Array]:
    """The `k` tokens whose unembedding rows score highest against `vector`. [D] -> [k], [k]

    `metric="dot"` gives the logits the lm_head would produce, `"cosine"` the angle only.
    `final_norm=True` first applies the final layer norm, as the model does to its last
    residual; leave it False for a vector that is already normed (`ln_final.out`).
    Returns (token ids, scores), best first. The lesson "When the token doesn't exist"
    explains it (and has you write it).
    """
    vector = jnp.asarray(vector, dtype=jnp.float32)  # (D,)
    if vector.shape != (config.d_model,):
        raise ValueError(
            f"vector must have shape ({config.d_model},) (one residual vector); got "
            f"{vector.shape}. Index one position first, e.g. cache['ln_final.out'][0, -1]"
        )
    if not 1 <= k <= config.vocab_size:
        raise ValueError(f"k must be between 1 and vocab_size={config.vocab_size}; got {k}")
    if final_norm:
        vector = layer_norm(vector, params["ln_final"])  # (D,)
    w_u = unembed_matrix(params, config)  # (V, D)
    if metric == "dot":
        scores = w_u @ vector  # (V,): exactly the logits
    elif metric == "cosine":
        # tiny floor so an all-zero row (a freshly zero-initialised token) gives 0, not NaN
        norms = jnp.linalg.norm(w_u, axis=-1) * jnp.linalg.norm(vector)  # (V,)
        scores = (w_u @ vector) / jnp.maximum(norms, 1e-12)  # (V,)
    else:
        raise ValueError(f"metric must be 'dot' or 'cosine'; got {metric!r}")
    top_scores, top_ids = jax.lax.top_k(scores, k)  # (k,), (k,)
    return top_ids, top_scores
