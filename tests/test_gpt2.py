"""GPT-2-format weights: a small random `transformers` GPT-2, saved to disk, loaded into
minitf, must give the same logits and the same logit-lens rows as `transformers` itself;
and a minitf model exported to a folder must open in `transformers` with the same logits
and load back into minitf bit for bit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest

from minitf import gpt2
from minitf.lens import logit_lens
from minitf.model import forward

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("safetensors")

N_LAYER, VOCAB, SEQ = 2, 100, 12


def save_random_gpt2(folder: Path, *, tied: bool = True, vocab_size: int = VOCAB, d: int = 64):
    """A seeded random GPT2LMHeadModel with non-trivial norms, saved as safetensors."""
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        n_layer=N_LAYER, n_head=4, n_embd=d, vocab_size=vocab_size, n_positions=32,
        tie_word_embeddings=tied,
    )
    model = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # move every weight off its init (norms at 1, biases at 0)
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(folder)
    return model


@pytest.mark.parametrize("tied", [True, False])
def test_logits_and_every_lens_row_match_transformers(tmp_path: Path, tied: bool) -> None:
    hf = save_random_gpt2(tmp_path, tied=tied)
    config, params, tokenizer = gpt2.load(tmp_path)
    assert tokenizer is None  # no vocab.json / merges.txt in the folder
    assert (config.n_layer, config.d_model, config.d_mlp) == (N_LAYER, 64, 256)
    assert config.tie_embeddings == tied and ("unembed" in params) == (not tied)

    tokens = np.random.default_rng(0).integers(0, VOCAB, (2, SEQ))  # (2, T)
    with torch.no_grad():
        out = hf(torch.tensor(tokens), output_hidden_states=True)
        want_logits = out.logits.numpy()  # (2, T, V)
        # hidden_states[l] for l < n_layer is the stream entering block l (resid_pre);
        # the last one already has ln_f applied, so its lens row is the logits themselves
        want_lens = [
            torch.log_softmax(hf.lm_head(hf.transformer.ln_f(h)), -1).numpy()
            for h in out.hidden_states[:N_LAYER]
        ] + [torch.log_softmax(out.logits, -1).numpy()]  # L+1 x (2, T, V)
    np.testing.assert_allclose(np.asarray(forward(params, tokens, config)), want_logits, atol=2e-4)
    for b in range(2):
        lens = logit_lens(params, config, tokens[b]).log_probs  # (L+1, T, V)
        assert lens.shape == (N_LAYER + 1, SEQ, VOCAB)
        for layer in range(N_LAYER + 1):
            np.testing.assert_allclose(lens[layer], want_lens[layer][b], atol=2e-4)


def test_folder_with_tokenizer_files_gives_a_tokenizer(tmp_path: Path) -> None:
    from minitf.bpe import Tokenizer

    save_random_gpt2(tmp_path, vocab_size=300)
    tok = Tokenizer.train("the sea horse swims in the sea " * 10, 270, pattern="gpt2")
    tok.save_gpt2(tmp_path)
    _, _, loaded = gpt2.load(tmp_path)
    assert loaded is not None and loaded.vocab_size == tok.vocab_size
    assert loaded.encode(" the sea horse") == tok.encode(" the sea horse")


def test_real_gpt2_tokenizer_files(tmp_path: Path, shared_data: Path) -> None:
    """GPT-2's own vocab.json + merges.txt beside a random model of GPT-2's vocabulary size
    (the weights are random: none are stored here, and none are downloaded)."""
    real = shared_data / "gpt2"
    if not (real / "vocab.json").is_file():
        pytest.skip("no GPT-2 tokenizer files in ../shared/data/gpt2")
    save_random_gpt2(tmp_path, vocab_size=50257, d=16)
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(real / name, tmp_path / name)
    config, _, tokenizer = gpt2.load(tmp_path)
    assert tokenizer.vocab_size == config.vocab_size == 50257
    assert tokenizer.encode("Hello world") == [15496, 995]  # GPT-2's ids
    save_random_gpt2(tmp_path, vocab_size=VOCAB)  # same files, a 100-token model
    with pytest.raises(ValueError, match="do not belong together"):
        gpt2.load(tmp_path)


def edit_config(folder: Path, **changes) -> None:
    path = folder / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**config, **changes}), encoding="utf-8")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model_type": "llama"}, "model_type='llama'"),
        ({"activation_function": "relu"}, "activation_function is 'relu'"),
        ({"layer_norm_epsilon": 1e-6}, "layer_norm_epsilon"),
        ({"n_layer": 3}, "lack 'h.2.ln_1.weight'"),
        ({"n_layer": 1}, "does not have"),
        ({"n_embd": 32}, "shape"),
        ({"scale_attn_by_inverse_layer_idx": True}, "scales attention"),
    ],
)
def test_unknown_layouts_are_clear_errors(tmp_path: Path, changes: dict, message: str) -> None:
    save_random_gpt2(tmp_path)
    edit_config(tmp_path, **changes)
    with pytest.raises(ValueError, match=message):
        gpt2.load(tmp_path)


def test_missing_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="never downloads"):
        gpt2.load(tmp_path / "gpt2")  # a name, not a folder on disk: no download
    with pytest.raises(ValueError, match="no config.json"):
        gpt2.load(tmp_path)
    save_random_gpt2(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(ValueError, match="has no model.safetensors"):
        gpt2.load(tmp_path)


def test_loaded_params_are_float32_jax_arrays(tmp_path: Path) -> None:
    save_random_gpt2(tmp_path)
    _, params, _ = gpt2.load(tmp_path)
    leaves = jax.tree.leaves(params)
    assert all(isinstance(x, jax.Array) and x.dtype == np.float32 for x in leaves)


# --- export: a minitf model -> a folder transformers reads ----------------------------------


def minitf_model(*, tied: bool, vocab_size: int = 14, seed: int = 0):
    """A random minitf model with every weight moved off its init (norms, biases too)."""
    from minitf.model import Config, init_params

    config = Config(vocab_size=vocab_size, n_layer=2, n_head=4, d_model=32, d_mlp=64,
                    max_len=16, tie_embeddings=tied)  # fmt: skip
    params = init_params(config, jax.random.key(seed))
    keys = iter(jax.random.split(jax.random.key(seed + 1), 64))
    params = jax.tree.map(lambda x: x + 0.1 * jax.random.normal(next(keys), x.shape), params)
    return config, params


@pytest.mark.parametrize("tied", [True, False])
def test_export_opens_in_transformers_with_the_same_logits(tmp_path: Path, tied: bool) -> None:
    config, params = minitf_model(tied=tied)
    gpt2.export(tmp_path / "export", params, config)
    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "export").eval()
    tokens = np.random.default_rng(0).integers(0, config.vocab_size, (3, config.max_len))
    with torch.no_grad():
        theirs = hf(torch.tensor(tokens)).logits.numpy()  # (3, T, V)
    ours = np.asarray(forward(params, tokens, config))  # (3, T, V)
    np.testing.assert_allclose(theirs, ours, atol=1e-5, rtol=0)
    assert hf.config.tie_word_embeddings == tied
    # in float64 the two compute the very same function: what is left is float32 rounding
    with torch.no_grad():
        theirs64 = hf.double()(torch.tensor(tokens)).logits.numpy()  # (3, T, V)
    with jax.enable_x64(True):
        params64 = jax.tree.map(lambda x: np.asarray(x, np.float64), params)
        ours64 = np.asarray(forward(params64, tokens, config))  # (3, T, V) float64
    assert ours64.dtype == np.float64
    np.testing.assert_allclose(theirs64, ours64, atol=1e-10, rtol=0)


@pytest.mark.parametrize("tied", [True, False])
def test_export_loads_back_bit_identically(tmp_path: Path, tied: bool) -> None:
    from minitf.chars import CharTokenizer

    config, params = minitf_model(tied=tied)
    tok = CharTokenizer("0123456789+= \n")
    gpt2.export(tmp_path / "export", params, config, tok, task={"name": "copy", "length": 3})
    back_config, back, back_tok = gpt2.load(tmp_path / "export")
    assert back_config == config and back_tok == tok
    flat, back_flat = jax.tree_util.tree_leaves_with_path(params), dict(
        jax.tree_util.tree_leaves_with_path(back))
    assert len(flat) == len(back_flat)
    for path, value in flat:
        assert np.array_equal(np.asarray(value), np.asarray(back_flat[path])), path
    assert gpt2.load_as_checkpoint(tmp_path / "export").task == {"name": "copy", "length": 3}


def test_export_of_a_bpe_model_keeps_its_tokenizer(tmp_path: Path) -> None:
    from minitf.bpe import Tokenizer

    tok = Tokenizer.train("the sea horse swims in the sea, 1234 times " * 20, 280,
                          pattern="gpt4", special_tokens=["<|endoftext|>"])  # fmt: skip
    config, params = minitf_model(tied=True, vocab_size=tok.vocab_size)
    folder = gpt2.export(tmp_path / "export", params, config, tok)
    assert {p.name for p in folder.iterdir()} == {"config.json", "model.safetensors",
                                                  "vocab.json", "merges.txt"}  # fmt: skip
    raw = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert raw["eos_token_id"] == tok.special_tokens["<|endoftext|>"]
    _, _, back = gpt2.load(folder)
    text = "the sea horse swims 12345 times<|endoftext|>"
    assert back.encode(text, allowed_special="all") == tok.encode(text, allowed_special="all")
    assert "gpt4" in gpt2.tokenizer_note(tok)  # transformers would split text GPT-2's way
    assert gpt2.tokenizer_note(Tokenizer.train("ab " * 50, 258, pattern="gpt2")) is None


def test_export_never_overwrites(tmp_path: Path) -> None:
    config, params = minitf_model(tied=True)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(ValueError, match="not an empty folder"):
        gpt2.export(tmp_path / "taken", params, config)
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["mine.txt"]
    (tmp_path / "empty").mkdir()
    gpt2.export(tmp_path / "empty", params, config)  # an empty folder is fine
    assert (tmp_path / "empty" / "model.safetensors").is_file()
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temp folder left


def test_cli_export_then_lens_and_explore_read_the_folder(tmp_path: Path, capsys) -> None:
    from minitf.checkpoint import save_checkpoint
    from minitf.cli import main
    from minitf.model import init_params
    from minitf.tasks import addition, config_for

    task = addition(2)
    config = config_for(task, n_layer=1, n_head=2, d_model=16, d_mlp=32)
    params = init_params(config, jax.random.key(0))
    save_checkpoint(tmp_path / "run" / "checkpoint", params, config, task.tokenizer,
                    task={"name": "addition", **task.spec})  # fmt: skip
    assert main(["export", str(tmp_path / "run"), "--to", str(tmp_path / "hf")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"wrote {tmp_path / 'hf'}/: config.json, model.safetensors"
    assert "GPT2LMHeadModel.from_pretrained(" in out[1]
    assert out[2].startswith("note: the export leaves out the character tokenizer")
    assert "'0123' -> [0, 1, 2, 3]" in out[2] and len(out) == 3
    # the folder is a GPT-2 folder that minitf's commands read like a checkpoint
    assert main(["lens", str(tmp_path / "hf"), "12+34="]) == 0
    assert "logit lens: the token after position 5" in capsys.readouterr().out
    assert main(["explore", str(tmp_path / "hf"), "--out", str(tmp_path / "x.html")]) == 0
    assert (tmp_path / "x.html").stat().st_size > 0
    # exporting again into the same folder is refused, in one line
    assert main(["export", str(tmp_path / "run"), "--to", str(tmp_path / "hf")]) == 2
    assert "not an empty folder" in capsys.readouterr().err
