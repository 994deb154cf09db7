"""The training benchmark still runs, and its PyTorch reference is the same model.

Benchmarks measure speed and are scripts, not tests; this only keeps them honest: the
minitf side runs the real train step (on a tiny size here), and the PyTorch side computes
exactly minitf's function when given minitf's weights, so the table compares like with like.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from minitf.model import Config, forward, init_params

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
TINY = dict(n_layer=2, n_head=2, d_model=16, d_mlp=64, seq=8, vocab=11, batch=4)


def load_script(name: str):
    """Import benchmarks/<name>.py as a module (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_train_benchmark_times_real_steps_on_a_tiny_config():
    bench = load_script("train")
    run, init_seconds, first_step_seconds = bench.minitf_runner(TINY)
    seconds = run(3)
    assert init_seconds > 0 and first_step_seconds > 0 and seconds > 0
    assert math.isfinite(seconds)


def test_torch_reference_computes_minitf_logits_from_minitf_weights():
    torch = pytest.importorskip("torch")
    reference = load_script("torch_reference")
    c = TINY
    config = Config(vocab_size=c["vocab"], n_layer=c["n_layer"], n_head=c["n_head"],
                    d_model=c["d_model"], d_mlp=c["d_mlp"], max_len=c["seq"])  # fmt: skip
    params = jax.tree.map(np.asarray, init_params(config, jax.random.key(0)))
    rng = np.random.default_rng(0)
    for norm in [b[k] for b in params["blocks"] for k in ("ln1", "ln2")] + [params["ln_final"]]:
        norm["scale"] = norm["scale"] + rng.normal(0, 0.1, norm["scale"].shape)  # not just 1
        norm["bias"] = norm["bias"] + rng.normal(0, 0.1, norm["bias"].shape)  # and 0
    model = reference.GPT(c["vocab"], c["seq"], c["n_layer"], c["n_head"], c["d_model"],
                          c["d_mlp"])  # fmt: skip

    def put(torch_param, value, transpose=False):
        value = np.asarray(value, np.float32)
        torch_param.data = torch.tensor(value.T if transpose else value)  # a copy

    def put_norm(torch_norm, norm):
        put(torch_norm.weight, norm["scale"])
        put(torch_norm.bias, norm["bias"])

    put(model.wte.weight, params["embed"])
    put(model.wpe.weight, params["pos_embed"])
    for torch_block, block in zip(model.blocks, params["blocks"], strict=True):
        put_norm(torch_block.ln_1, block["ln1"])
        put(torch_block.attn.c_attn.weight, block["attn"]["w_qkv"], transpose=True)
        put(torch_block.attn.c_attn.bias, block["attn"]["b_qkv"])
        put(torch_block.attn.c_proj.weight, block["attn"]["w_out"], transpose=True)
        put(torch_block.attn.c_proj.bias, block["attn"]["b_out"])
        put_norm(torch_block.ln_2, block["ln2"])
        put(torch_block.c_fc.weight, block["mlp"]["w_in"], transpose=True)
        put(torch_block.c_fc.bias, block["mlp"]["b_in"])
        put(torch_block.c_proj.weight, block["mlp"]["w_out"], transpose=True)
        put(torch_block.c_proj.bias, block["mlp"]["b_out"])
    put_norm(model.ln_f, params["ln_final"])
    put(model.lm_head.weight, params["unembed"])  # (V, D): logits = x @ W.T in both

    tokens = rng.integers(0, c["vocab"], (3, c["seq"]))  # (B, T)
    expected = np.asarray(forward(params, tokens, config))  # (B, T, V)
    with torch.no_grad():
        got = model(torch.from_numpy(tokens)).numpy()  # (B, T, V)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_text_benchmark_schedule_is_minitfs():
    pytest.importorskip("torch")
    import optax

    reference = load_script("torch_reference")
    schedule = optax.warmup_cosine_decay_schedule(0.0, 1e-3, 100, 2000, 1e-4)
    for step in (0, 1, 50, 99, 100, 101, 1000, 1999, 2000):
        assert reference.warmup_cosine(step, 1e-3, 100, 2000, 1e-4) == pytest.approx(
            float(schedule(step)), rel=1e-5, abs=1e-9)


def test_text_benchmark_trains_both_sides_on_the_same_text(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from minitf.text import text_task, validation_windows
    from minitf.train import TrainConfig

    monkeypatch.setenv("MINITF_CACHE", str(tmp_path / "cache"))
    bench = load_script("text")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat. the dog ran. " * 400, encoding="utf-8")
    task = text_task(corpus, tokenizer="char", context=8, progress=False)
    windows = validation_windows(task.val_ids, 8, 20)  # (20, 9)
    tiny = dict(n_layer=1, n_head=2, d_model=16, d_mlp=32, seq=8, batch=4, steps=30, warmup=3)
    recipe = {**bench.NANOGPT, **tiny, "lr": 1e-2}
    torch_run = bench.run_torch(task, windows, recipe, tmp_path)
    settings = TrainConfig(steps=30, batch_size=4, lr=1e-2, warmup=3, lr_end=1e-4, beta2=0.99)
    model = {"n_layer": 1, "n_head": 2, "d_model": 16, "d_mlp": 32, "tie_embeddings": True}
    minitf_run = bench.run_minitf(task, windows, model, settings)
    # same recipe, same batches: both learn the repeated sentence equally far
    entropy = task.unigram_entropy()
    for run in (torch_run, minitf_run):
        assert run["seconds"] > 0 and run["val_loss"] < entropy
    assert abs(torch_run["val_loss"] - minitf_run["val_loss"]) < 0.3
