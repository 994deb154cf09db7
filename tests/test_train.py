"""Training: the masked loss, a golden run, exact resume, checkpoints that fail loudly,
divergence, and data parallelism giving the same loss as one device."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from minitf.chars import CharTokenizer
from minitf.model import forward, init_params
from minitf.tasks import addition, config_for, copy
from minitf.train import (
    TrainingDiverged,
    load_checkpoint,
    loss_fn,
    save_checkpoint,
    train,
)
from minitf.words import WordTokenizer

TASK = addition(2)
TINY = config_for(TASK, n_layer=1, n_head=2, d_model=32, d_mlp=64)
init = jax.jit(init_params, static_argnums=0)


def flat(tree) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def test_loss_counts_only_answer_tokens():
    params = init(TINY, jax.random.key(0))
    tokens, mask = TASK.batch(np.random.default_rng(0), 4)
    loss, accuracy = jax.jit(loss_fn, static_argnums=3)(params, tokens, mask, TINY)
    # reference: numpy log-softmax at the scored positions only
    logits = np.asarray(jax.jit(forward, static_argnums=2)(params, tokens[:, :-1], TINY))
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))  # (B, T-1, V)
    rows, cols = np.nonzero(mask[:, :-1])
    assert len(rows) == 4 * TASK.answer_len
    want = -logp[rows, cols, tokens[rows, cols + 1]].mean()
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)
    assert 0.0 <= float(accuracy) <= 1.0


# Golden run: produced by running this test's train(...) call once on a CPU (jax 0.10.2)
# and pasting the final loss. Highest matmul precision so a GPU's TF32 can't move it.
GOLDEN_LOSS_AFTER_50_STEPS = 1.6824613809585571


def test_golden_run():
    with jax.default_matmul_precision("highest"):
        result = train(TINY, TASK, steps=50, batch_size=32, lr=3e-3, seed=1234, progress=False)
    assert result.history["step"] == list(range(1, 51))
    assert result.history["loss"][-1] < result.history["loss"][0]
    np.testing.assert_allclose(result.history["loss"][-1], GOLDEN_LOSS_AFTER_50_STEPS, rtol=1e-3)


def interrupt_at(task, step: int):
    """A copy of `task` whose batch() raises KeyboardInterrupt when asked for batch `step`."""
    calls = {"n": 0}

    def batch(rng, batch_size):
        if calls["n"] == step:
            raise KeyboardInterrupt
        calls["n"] += 1
        return task.batch(rng, batch_size)

    class Interrupting:
        def __getattr__(self, name):
            return batch if name == "batch" else getattr(task, name)

    return Interrupting()


def test_ctrl_c_saves_and_resume_is_bit_identical(tmp_path):
    settings = dict(steps=12, batch_size=16, lr=3e-3, seed=5, progress=False)
    straight = train(TINY, TASK, **settings)

    first = train(TINY, interrupt_at(TASK, 5), **settings, out=tmp_path, checkpoint_every=4)
    assert first.interrupted and first.step == 5
    assert load_checkpoint(tmp_path / "checkpoint").step == 5
    resumed = train(TINY, TASK, **settings, out=tmp_path, resume=True)
    assert resumed.step == 12 and not resumed.interrupted

    for a, b in zip(flat(straight.params), flat(resumed.params), strict=True):
        np.testing.assert_array_equal(a, b)  # bit-identical, not merely close
    for a, b in zip(flat(straight.opt_state), flat(resumed.opt_state), strict=True):
        np.testing.assert_array_equal(a, b)
    metrics = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["history"]["step"] == list(range(1, 13))
    assert metrics["history"]["loss"] == straight.history["loss"]
    assert (tmp_path / "loss.png").stat().st_size > 1000


@pytest.mark.parametrize("every", ["eval_every", "checkpoint_every"])
def test_negative_intervals_are_refused(every):
    with pytest.raises(ValueError, match=f"{every} must be 0 .never. or a positive"):
        train(TINY, TASK, steps=2, batch_size=8, progress=False, **{every: -1})


def test_resume_refuses_different_settings(tmp_path):
    train(TINY, TASK, steps=2, batch_size=8, lr=1e-3, seed=0, progress=False, out=tmp_path)
    with pytest.raises(ValueError, match=r"other settings: lr=0.001 \(now 0.002\);"):
        train(TINY, TASK, steps=2, batch_size=8, lr=2e-3, seed=0, progress=False,
              out=tmp_path, resume=True)  # fmt: skip
    wider = config_for(TASK, n_layer=1, n_head=2, d_model=64, d_mlp=64)
    with pytest.raises(ValueError, match=r"other settings: d_model=32 \(now 64\);"):
        train(wider, TASK, steps=2, batch_size=8, lr=1e-3, seed=0, progress=False,
              out=tmp_path, resume=True)  # fmt: skip
    with pytest.raises(FileNotFoundError, match="no checkpoint to resume in"):
        train(TINY, TASK, steps=2, batch_size=8, lr=1e-3, progress=False,
              out=tmp_path / "empty", resume=True)  # fmt: skip
    assert not (tmp_path / "empty").exists()  # a mistyped --out leaves no folder behind


def test_checkpoint_round_trip(tmp_path):
    params = init(TINY, jax.random.key(3))
    tok = CharTokenizer("0123456789+=")
    save_checkpoint(tmp_path / "ck", params, TINY, tok, 7, task={"name": "addition", "digits": 2},
                    meta={"seed": 3})  # fmt: skip
    ck = load_checkpoint(tmp_path / "ck")
    assert (ck.config, ck.tokenizer, ck.step, ck.meta) == (TINY, tok, 7, {"seed": 3})
    assert ck.task == {"name": "addition", "digits": 2} and ck.opt_state is None
    for a, b in zip(flat(params), flat(ck.params), strict=True):
        np.testing.assert_array_equal(a, b)
    names = np.load(tmp_path / "ck" / "params.npz").files
    assert "blocks.0.attn.w_qkv" in names and "embed" in names

def test_checkpoint_keeps_a_word_tokenizer(tmp_path):
    words = WordTokenizer(["sea", "horse", "emoji-of"])
    save_checkpoint(tmp_path / "ck", init(TINY, jax.random.key(0)), TINY, words, 1)
    loaded = load_checkpoint(tmp_path / "ck").tokenizer
    assert isinstance(loaded, WordTokenizer) and loaded.words == words.words


def test_failed_save_leaves_the_old_checkpoint_and_no_debris(tmp_path, monkeypatch):
    params = init(TINY, jax.random.key(0))
    save_checkpoint(tmp_path / "ck", params, TINY, None, 1)
    real_savez = np.savez

    def savez_then_fail(path, **arrays):
        real_savez(path, **arrays)  # a partial folder now exists...
        raise OSError("disk full")  # ...and then writing fails

    monkeypatch.setattr("minitf.checkpoint.np.savez", savez_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "ck", params, TINY, None, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]  # no temp folder left
    assert load_checkpoint(tmp_path / "ck").step == 1  # the old one is intact


@pytest.mark.parametrize("damage", ["truncate", "garbage_json", "foreign", "no_params",
                                    "wrong_shape"])  # fmt: skip
def test_damaged_checkpoints_give_clear_errors(tmp_path, damage):
    folder = tmp_path / "ck"
    save_checkpoint(folder, init(TINY, jax.random.key(0)), TINY, None, 1)
    if damage == "truncate":
        data = (folder / "params.npz").read_bytes()
        (folder / "params.npz").write_bytes(data[: len(data) // 2])
    elif damage == "garbage_json":
        (folder / "config.json").write_bytes(b"\x00{not json")
    elif damage == "foreign":
        (folder / "config.json").write_text('{"model_type": "gpt2"}', encoding="utf-8")
    elif damage == "no_params":
        (folder / "params.npz").unlink()
    elif damage == "wrong_shape":
        description = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        description["config"]["d_model"] = 64
        (folder / "config.json").write_text(json.dumps(description), encoding="utf-8")
    with pytest.raises(ValueError, match="checkpoint|shape"):
        load_checkpoint(folder)


def test_missing_checkpoint_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nothing")


def nothing_to_score_at(task, step: int):
    """A copy of `task` whose batch for step `step` (1-based) scores no token at all: its
    mean loss is 0 / 0 = NaN, and so are the gradients and the parameters after it."""
    calls = {"n": 0}

    def batch(rng, batch_size):
        calls["n"] += 1
        tokens, mask = task.batch(rng, batch_size)
        return tokens, mask & (calls["n"] != step)

    class Poisoned:
        def __getattr__(self, name):
            return batch if name == "batch" else getattr(task, name)

    return Poisoned()


def test_divergence_stops_with_the_step_and_last_checkpoint(tmp_path):
    """The message names the step that diverged and the checkpoint that is really on disk
    (step 7 with checkpoint_every=7, not the last finite step 9)."""
    with pytest.raises(TrainingDiverged, match=r"the loss is nan at step 10; the last good "
                       r"checkpoint is .* \(step 7\)") as e:  # fmt: skip
        train(TINY, nothing_to_score_at(TASK, 10), steps=20, batch_size=8, lr=3e-3, seed=0,
              progress=False, out=tmp_path, checkpoint_every=7)  # fmt: skip
    assert str(tmp_path / "checkpoint") in str(e.value)
    assert isinstance(e.value, ValueError)
    assert load_checkpoint(tmp_path / "checkpoint").step == 7  # nothing saved after it


def test_divergence_after_resume_names_the_resumed_checkpoint(tmp_path):
    settings = dict(steps=20, batch_size=8, lr=3e-3, seed=0, progress=False, out=tmp_path)
    train(TINY, interrupt_at(TASK, 6), **settings)  # Ctrl-C after step 6 saves step 6
    with pytest.raises(TrainingDiverged, match=r"at step 8; the last good checkpoint is "
                       r".* \(step 6\)"):  # fmt: skip
        train(TINY, nothing_to_score_at(TASK, 2), **settings, resume=True)  # its 2nd step: 8


def test_non_finite_parameters_stop_the_run_and_are_never_saved(tmp_path, monkeypatch):
    """The loss is computed before the update, so a finite loss can come with an update
    that makes the parameters infinite (as lr=1e300 used to): the run stops at that step
    and the checkpoint on disk stays finite."""
    import jax.numpy as jnp
    import optax

    import minitf.train as train_module

    real = train_module.make_optimizer
    blow_up = optax.scale_by_schedule(lambda count: jnp.where(count == 3, jnp.inf, 1.0))
    monkeypatch.setattr(train_module, "make_optimizer", lambda s: optax.chain(real(s), blow_up))
    train_module._compiled.cache_clear()  # its cached steps use the real optimizer
    try:
        with pytest.raises(TrainingDiverged, match=r"the parameters became NaN or infinite "
                           r"\(the loss was .*\) at step 4; .* \(step 3\)"):  # fmt: skip
            train(TINY, TASK, steps=10, batch_size=8, lr=3e-3, seed=0, progress=False,
                  out=tmp_path, checkpoint_every=3)  # fmt: skip
    finally:
        train_module._compiled.cache_clear()
    saved = load_checkpoint(tmp_path / "checkpoint")
    assert saved.step == 3
    assert all(np.isfinite(x).all() for x in flat(saved.params))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"lr": float("inf")}, "lr must be a positive finite number"),
        ({"lr": float("nan")}, "lr must be a positive finite number"),
        ({"lr": 1e300}, "lr must be at most 1.0"),
        ({"lr": 0.5, "weight_decay": 2.0}, "weight_decay must be below 1 / lr"),
        ({"steps": 2**40}, "steps must be at most"),
        ({"eval_n": 10**9}, "eval_n must be a number of problems from 1 to 1,000,000"),
        ({"seed": 2**70}, "seed must be a whole number from 0 to 2..32 - 1"),
        ({"steps": 5, "warmup": 5}, "warmup must be a number of steps from 0 to steps - 1"),
    ],
)
def test_absurd_settings_are_refused_up_front(fields, message):
    from minitf.train import TrainConfig

    with pytest.raises(ValueError, match=message):
        TrainConfig(**fields)


def test_one_step_runs():
    """steps=1 used to fail inside optax (a warmup as long as the whole run)."""
    assert train(TINY, TASK, steps=1, batch_size=8, progress=False).step == 1


def test_memory_estimate_refuses_a_model_that_cannot_fit():
    from minitf.memory import count_params_of
    from minitf.model import count_params

    for config in (TINY, config_for(TASK, n_layer=3, n_head=2, d_model=8, d_mlp=24,
                                    tie_embeddings=True)):  # fmt: skip
        assert count_params_of(config) == count_params(init(config, jax.random.key(0)))
    huge = config_for(TASK, n_layer=2, n_head=4, d_model=100_000, d_mlp=400_000)
    with pytest.raises(ValueError, match=r"needs about [\d,.]+ GB of memory .* make the model"):
        train(huge, TASK, steps=1, batch_size=8, progress=False)
    with pytest.raises(ValueError, match=r"activations of 100,000,000 sequences"):
        train(TINY, TASK, steps=1, batch_size=100_000_000, progress=False)


def test_small_model_learns_copy():
    task = copy(2)
    config = config_for(task, n_layer=1, n_head=2, d_model=32, d_mlp=64)
    result = train(config, task, steps=150, batch_size=64, lr=1e-2, seed=0, progress=False)
    assert task.evaluate(result.params, config, n=200) >= 0.9


PARALLEL_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax
    from minitf.tasks import addition, config_for
    from minitf.train import train
    task = addition(2)
    config = config_for(task, n_layer=1, n_head=2, d_model=32, d_mlp=64)
    try:
        train(config, task, steps=2, batch_size=5, lr=3e-3, seed=0, progress=False)
        odd = "accepted"
    except ValueError as err:
        odd = str(err)
    r = train(config, task, steps=8, batch_size=16, lr=3e-3, seed=0, progress=False)
    print(json.dumps({"devices": jax.device_count(), "loss": r.history["loss"], "odd": odd}))
    """
)


def run_on_devices(n: int) -> dict:
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n}",
           "JAX_PLATFORMS": "cpu"}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", PARALLEL_SCRIPT], env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_two_devices_give_the_same_loss_as_one():
    one, two = run_on_devices(1), run_on_devices(2)
    assert (one["devices"], two["devices"]) == (1, 2)
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=1e-5)
    assert two["odd"] == "accepted"  # a batch of 5 runs on one of the two devices


def test_callback_keeps_snapshots_and_can_stop_the_run():
    """The callback sees the parameters before the first step and after every step (the
    lesson "The logit lens" keeps snapshots with it); returning True stops the run."""
    from minitf.lens import first_top1_layers

    snapshots = []

    def keep(step, params):
        if step % 4 == 0 or step == 6:
            snapshots.append((step, jax.device_get(params)))

    result = train(TINY, TASK, steps=6, batch_size=8, lr=3e-3, seed=0, progress=False,
                   callback=keep)  # fmt: skip
    assert [step for step, _ in snapshots] == [0, 4, 6]
    for last, final in zip(flat(snapshots[-1][1]), flat(result.params), strict=True):
        np.testing.assert_array_equal(last, final)
    assert not np.array_equal(snapshots[0][1]["embed"], result.params["embed"])
    prompts, answers = TASK.problems(np.random.default_rng(0), 5, "test")
    tokens = np.concatenate([prompts, answers], axis=1)
    positions = np.arange(TASK.prompt_len - 1, TASK.seq_len - 1)
    first = np.stack([first_top1_layers(p, TINY, tokens, positions) for _, p in snapshots])
    assert first.shape == (3, 5, TASK.answer_len)
    assert first.min() >= 0 and first.max() <= TINY.n_layer + 1

    stopped = train(TINY, TASK, steps=6, batch_size=8, lr=3e-3, seed=0, progress=False,
                    callback=lambda step, params: step >= 2)  # fmt: skip
    assert stopped.step == 2 and stopped.interrupted
    assert stopped.history["step"] == [1, 2]
