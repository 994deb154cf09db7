"""Checks for lesson 7's exercises: the shift by one, the answer's loss mask, the masked
cross-entropy and one training step.

Each takes the learner's definitions as `module`; AssertionError carries a hint, never
the expected answer. The mask is compared with `Task.batch`, the loss with
`minitf.train.loss_fn` on a tiny random model (1e-5 tolerance, explicit random keys).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from minitf import model
from minitf.course.hidden import close, graded
from minitf.tasks import addition, config_for, copy, count_letters
from minitf.train import loss_fn

TOL = 1e-5


def _tokens_case(rng: np.random.Generator) -> tuple:
    shape = (int(rng.integers(1, 5)), int(rng.integers(2, 14)))  # (B, T)
    return (jnp.asarray(rng.integers(0, 100, shape)),)


def _loss_case(rng: np.random.Generator) -> tuple:
    B, S, V = int(rng.integers(1, 5)), int(rng.integers(1, 10)), int(rng.integers(2, 15))
    mask = rng.random((B, S)) < 0.5  # (B, S): rows with different numbers of scored positions
    mask[rng.integers(B), rng.integers(S)] = True
    return (jnp.asarray(3.0 * rng.normal(size=(B, S, V)), jnp.float32),
            jnp.asarray(rng.integers(0, V, (B, S))), jnp.asarray(mask))


@graded(points=1, cases=lambda rng: [_tokens_case(rng) for _ in range(4)],
        hint="inputs are the tokens without the last one, targets without the first, along "
        "the sequence axis (1)")
def check_next_token_targets(module) -> None:
    for seed, (B, T) in enumerate([(1, 2), (3, 5), (4, 12)]):
        tokens = jax.random.randint(jax.random.key(seed), (B, T), 0, 100)  # (B, T)
        got = module.next_token_targets(tokens)
        assert isinstance(got, tuple) and len(got) == 2, "return a tuple (inputs, targets)"
        inputs, targets = (np.asarray(a) for a in got)
        assert inputs.shape == targets.shape == (B, T - 1), (
            f"for tokens of shape ({B}, {T}) both inputs and targets should have shape "
            f"({B}, {T - 1}): one token fewer than the sequence")
        tok = np.asarray(tokens)
        assert np.array_equal(inputs[:, 0], tok[:, 0]), "the inputs should start at token 0"
        assert np.array_equal(targets[:, 0], tok[:, 1]), (
            "targets[:, t] should be the token that follows inputs[:, t]")
        assert np.array_equal(inputs, tok[:, :-1]) and np.array_equal(targets, tok[:, 1:]), (
            "inputs and targets should be the sequence shifted against each other by one "
            "position, along the sequence axis (not the batch axis)")


@graded(points=1, cases=lambda rng: [(int(p), int(a)) for p, a in
                                     zip(rng.integers(2, 9, 5), rng.integers(1, 7, 5),
                                         strict=True)],
        hint="A positions in a row are scored, from the last prompt token to the one before "
        "the last token", borrowed=("minitf.tasks.Task.batch",))
def check_answer_loss_mask(module) -> None:
    for task in (addition(1), addition(3), addition(5), copy(4), count_letters(6)):
        P, A = task.prompt_len, task.answer_len
        got = np.asarray(module.answer_loss_mask(P, A))
        assert got.shape == (P + A,), (
            f"with prompt_len={P} and answer_len={A} the mask covers the whole sequence, "
            "one entry per token")
        assert got.dtype == np.bool_, "the mask should be a bool array (True = scored)"
        assert int(got.sum()) == A, (
            f"{int(got.sum())} positions are scored, but there is one prediction per "
            "answer token")
        assert not got[-1], "the last position has no next token, so it can't be scored"
        assert got[P - 1], (
            "the last prompt token (the '=') predicts the first answer token: score it")
        _, loss_mask = task.batch(np.random.default_rng(0), 2)  # (B, T)
        assert np.array_equal(got, loss_mask[0]), (
            "the scored positions should be the A positions in a row ending one before the "
            "last token")


def _logits_targets_mask(seed: int, B: int, S: int, V: int):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    logits = 3.0 * jax.random.normal(k1, (B, S, V))  # (B, S, V)
    targets = jax.random.randint(k2, (B, S), 0, V)  # (B, S)
    mask = jax.random.bernoulli(k3, 0.5, (B, S)).at[0, 0].set(True)  # (B, S) rows differ
    return logits, targets, mask


def _reference(logits, targets, mask) -> float:
    logp = np.asarray(jax.nn.log_softmax(logits, axis=-1))  # (B, S, V)
    rows, cols = np.nonzero(np.asarray(mask))
    return float(-logp[rows, cols, np.asarray(targets)[rows, cols]].mean())


@graded(points=2, cases=lambda rng: [_loss_case(rng) for _ in range(5)],
        compare=close(atol=1e-5, rtol=1e-5),
        hint="-log_softmax(logits)[target] at each scored position, summed and divided by "
        "the number of scored positions in the whole batch",
        borrowed=("minitf.train.loss_fn",))
def check_masked_cross_entropy(module) -> None:
    # uniform logits: every token has probability 1 / V, whatever the target
    V = 7
    logits = jnp.zeros((2, 3, V))  # (B, S, V)
    targets = jnp.array([[0, 1, 2], [3, 4, 5]])  # (B, S)
    got = float(module.masked_cross_entropy(logits, targets, jnp.ones((2, 3), dtype=bool)))
    assert math.isclose(got, math.log(V), rel_tol=1e-5), (
        "with all logits equal the loss should be log(V): did you take the log of a "
        "softmax over the vocabulary axis (-1) and negate it?")

    for seed, (B, S, V) in enumerate([(2, 3, 5), (4, 11, 12)]):
        logits, targets, mask = _logits_targets_mask(seed, B, S, V)
        got = module.masked_cross_entropy(logits, targets, mask)
        assert jnp.shape(got) == (), "return one number (a scalar array), the mean loss"
        # positions outside the mask must not matter at all
        noise = 50.0 * jax.random.normal(jax.random.key(100 + seed), logits.shape)
        scrambled = jnp.where(mask[..., None], logits, noise)  # (B, S, V)
        other_targets = jnp.where(mask, targets, (targets + 1) % V)  # (B, S)
        again = float(module.masked_cross_entropy(scrambled, other_targets, mask))
        assert math.isclose(float(got), again, rel_tol=1e-5, abs_tol=TOL), (
            "changing logits or targets where the mask is False changed the loss: "
            "those positions must contribute nothing")
        if not math.isclose(float(got), _reference(logits, targets, mask), rel_tol=1e-5):
            raise AssertionError(
                "the loss is off when rows have different numbers of scored positions: take "
                "-log p(target) at each scored position and divide their sum by the number "
                "of scored positions in the whole batch")

    # the same number as minitf's training loss, on a tiny random model
    task = addition(2)
    config = config_for(task, n_layer=1, n_head=2, d_model=16, d_mlp=32)
    params = jax.jit(model.init_params, static_argnums=0)(config, jax.random.key(7))
    tokens, loss_mask = task.batch(np.random.default_rng(7), 8)  # (B, T), (B, T)
    want, _ = jax.jit(loss_fn, static_argnums=3)(params, tokens, loss_mask, config)
    logits = jax.jit(model.forward, static_argnums=2)(params, tokens[:, :-1], config)
    got = float(module.masked_cross_entropy(logits, tokens[:, 1:], loss_mask[:, :-1]))
    assert math.isclose(got, float(want), rel_tol=1e-5), (
        "the loss differs from minitf.train.loss_fn on a real batch")


def _tree_close(a, b, atol: float) -> bool:
    return all(np.allclose(np.asarray(x), np.asarray(y), atol=atol)
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def _optimizer(spec: tuple) -> optax.GradientTransformation:
    """An optax optimizer from stored numbers: ("sgd", lr, momentum) or ("adamw", lr, decay)."""
    kind, lr, other = spec
    return optax.sgd(lr, momentum=other) if kind == "sgd" else optax.adamw(lr, weight_decay=other)


def _train_step_case(rng: np.random.Generator, kind: str, clip: float) -> tuple:
    """A tiny random model, a batch, an optimizer and the gradient of an earlier step (so
    that the optimizer's state is not fresh)."""
    n_head = int(rng.integers(1, 3))
    B, T = int(rng.integers(1, 5)), int(rng.integers(3, 7))
    config = model.Config(vocab_size=int(rng.integers(4, 13)), n_layer=1, n_head=n_head,
                          d_model=n_head * int(rng.integers(2, 5)), d_mlp=int(rng.integers(4, 17)),
                          max_len=T - 1, tie_embeddings=bool(rng.random() < 0.5))
    shapes = jax.eval_shape(lambda: model.init_params(config, jax.random.key(0)))

    def draw(std: float) -> dict:
        return jax.tree.map(lambda x: jnp.asarray(rng.normal(0, std, x.shape), jnp.float32),
                            shapes)

    params, earlier_grads = draw(0.3), draw(0.1)
    tokens = jnp.asarray(rng.integers(0, config.vocab_size, (B, T)))
    mask = rng.random((B, T)) < 0.6  # (B, T): True where the next token is scored
    mask[0, T - 2] = True
    spec = (kind, float(rng.uniform(0.01, 0.5)), float(rng.uniform(0.5, 0.95) if kind == "sgd"
                                                        else rng.uniform(0, 0.2)))
    return (params, tokens, jnp.asarray(mask), spec, config, clip, earlier_grads)


def _train_step_args(params, tokens, loss_mask, spec, config, clip, earlier_grads) -> tuple:
    optimizer = _optimizer(spec)
    opt_state = jax.jit(lambda g, p: optimizer.update(g, optimizer.init(p), p)[1])(
        earlier_grads, params)  # fmt: skip
    return (params, opt_state, tokens, loss_mask, optimizer, config, clip)


def _jitted(train_step, params, opt_state, tokens, loss_mask, optimizer, config, clip):
    """The step under jax.jit, as the lesson runs it (op by op it compiles for seconds)."""
    step = jax.jit(lambda p, s, t, m: train_step(p, s, t, m, optimizer, config, clip))
    return step(params, opt_state, tokens, loss_mask)


def _train_step_cases(rng: np.random.Generator) -> list[tuple]:
    """Two steps (each one compilation): clipped and not, with SGD and AdamW."""
    kinds = ["sgd", "adamw"] if rng.random() < 0.5 else ["adamw", "sgd"]
    return [_train_step_case(rng, kind, clip) for kind, clip in zip(kinds, (0.01, 1e3),
                                                                     strict=True)]


@graded(points=3, cases=_train_step_cases, prepare=_train_step_args, run=_jitted,
        compare=close(atol=1e-5, rtol=1e-4),
        hint="the loss (before the update) and the gradient of loss_fn with respect to "
        "params; the global norm over every gradient array together, scaled down to clip "
        "only when above it; optimizer.update(grads, opt_state, params), then "
        "optax.apply_updates; return the optimizer's new state. It runs under jax.jit, as "
        "in the lesson",
        borrowed=("minitf.train.make_step", "optax.clip_by_global_norm", "optax.global_norm"))
def check_train_step(module) -> None:
    import functools

    from minitf.train import make_step

    task = addition(2)
    config = config_for(task, n_layer=1, n_head=2, d_model=16, d_mlp=32)
    params = jax.jit(model.init_params, static_argnums=0)(config, jax.random.key(3))
    tokens, loss_mask = task.batch(np.random.default_rng(3), 8)  # (B, T), (B, T)
    want_loss, _ = jax.jit(loss_fn, static_argnums=3)(params, tokens, loss_mask, config)
    # plain SGD shows the clipping (Adam would hide a rescaled gradient)
    for clip in (1e6, 0.05):
        sgd = optax.sgd(0.5)
        got = module.train_step(params, sgd.init(params), tokens, loss_mask, sgd, config, clip)
        assert isinstance(got, tuple) and len(got) == 3, "return (params, opt_state, loss)"
        new_params, _, loss = got
        assert np.isclose(float(loss), float(want_loss), rtol=1e-5), (
            "the loss returned should be minitf.train.loss_fn's loss before the update")
        clipped = optax.chain(optax.clip_by_global_norm(clip), sgd)
        reference = make_step(functools.partial(loss_fn, config=config), clipped)
        want_params, _, _, _ = reference(params, clipped.init(params), (tokens, loss_mask))
        if not _tree_close(new_params, want_params, 1e-5):
            if clip < 1:
                raise AssertionError(
                    "the step is off when the gradient is clipped: compute the global norm "
                    "over every gradient array together, and when it exceeds `clip` multiply "
                    "every array by clip / norm")
            raise AssertionError(
                "the new parameters are off: take the gradient of loss_fn with respect to "
                "params, pass it to optimizer.update(grads, opt_state, params), then "
                "optax.apply_updates")
    # AdamW, two steps: the optimizer's state must be carried from step to step
    adamw = optax.adamw(1e-2, weight_decay=0.1)
    state, p = adamw.init(params), params
    reference = make_step(functools.partial(loss_fn, config=config),
                          optax.chain(optax.clip_by_global_norm(1.0), adamw))
    ref_state, ref_p = optax.chain(optax.clip_by_global_norm(1.0), adamw).init(params), params
    for _ in range(2):
        p, state, _ = module.train_step(p, state, tokens, loss_mask, adamw, config, 1.0)
        ref_p, ref_state, _, _ = reference(ref_p, ref_state, (tokens, loss_mask))
    assert _tree_close(p, ref_p, 1e-5), (
        "after two AdamW steps the parameters differ: return the optimizer's new state and "
        "pass the whole params tree to optimizer.update (AdamW's weight decay needs it)")
