"""What goes wrong on the command line is one sentence (exit code 2), found before any
work where it can be: OS errors naming the path, absurd sizes, damaged files, a folder
that already holds a run, and the `bpe` commands' bad input."""

from __future__ import annotations

import errno
import json
import shutil
import time
from types import SimpleNamespace

import numpy as np
import pytest

from minitf import gpt2
from minitf.cli import main

TINY = ["--n-layer", "1", "--n-head", "2", "--d-model", "32", "--d-mlp", "64"]
COPY = ["train", "copy", "--length", "3", "--steps", "20", "--batch-size", "16", "--eval-n",
        "20", "--no-progress", *TINY]  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    assert main([*COPY, "--out", str(out)]) == 0
    return out


def one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("minitf: error:"), err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "copy", "--seed", "-1"], "--seed must be a whole number from 0 to 2**32 - 1"),
        (["train", "copy", "--seed", str(2**70)], "--seed must be a whole number from 0"),
        (["train", "copy", "--lr", "nan"], "--lr must be a positive finite number"),
        (["train", "copy", "--lr", "inf"], "--lr must be a positive finite number"),
        (["train", "copy", "--lr", "1e300"], "--lr must be at most 1.0"),
        (["train", "copy", "--eval-n", "1000000000"], "--eval-n must be a number of problems"),
        (["train", "copy", "--steps", str(2**40)], "--steps must be at most"),
        (["train", "copy", "--batch-size", "100000000"], "GB of memory"),
        (["train", "copy", "--d-model", "100000"], "make the model smaller (--d-model"),
        (["train", "copy", "--resume", "--overwrite", "--out", "x"], "give one of them"),
        (["sample", "x", "--prompt", "1", "--seed", str(2**70)], "--seed must be a whole"),
        (["eval", "x", "--seed", str(2**70)], "--seed must be a whole number"),
        (["eval", "x", "--n", "1000000000"], "--n must be a number of problems from 1 to"),
        (["doctor", "--seconds", "-1"], "--seconds must be a positive number of seconds"),
        (["train", "copy", "--coordinator", "127.0.0.1:1"], "needs all three of --coordinator"),
    ],
)
def test_absurd_values_are_refused_at_once(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may be written, but if it were, not in the checkout
    start = time.perf_counter()
    assert main(argv) == 2
    one_line_error(capsys, message)
    assert time.perf_counter() - start < 30  # before any training or evaluation
    assert list(tmp_path.iterdir()) == []


def test_empty_out_is_refused(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "copy", "--out", ""])
    assert e.value.code == 2 and "--out: is empty; give a folder name" in capsys.readouterr().err


def test_a_fresh_run_into_a_folder_that_holds_one_is_refused(run_dir, capsys):
    before = (run_dir / "checkpoint" / "params.npz").read_bytes()
    assert main([*COPY, "--out", str(run_dir), "--seed", "3"]) == 2
    one_line_error(capsys, "already holds a run (a checkpoint at step 20); use --resume to "
                   "continue it or --overwrite to start over")  # fmt: skip
    assert (run_dir / "checkpoint" / "params.npz").read_bytes() == before
    assert main(["demo", "--steps", "5", "--out", str(run_dir), "--no-progress", *TINY]) == 2
    one_line_error(capsys, "already holds a run (a checkpoint at step 20); pass --overwrite to "
                   "train the demo again, or --out DIR")  # fmt: skip


def test_overwrite_starts_over(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*COPY, "--out", str(out), "--steps", "3"]) == 0
    assert main([*COPY, "--out", str(out), "--steps", "4", "--overwrite"]) == 0
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["history"]["step"] == [1, 2, 3, 4]


def test_resume_mismatch_names_the_flags_that_differ(run_dir, capsys):
    argv = [*COPY[:-8], "--n-layer", "1", "--n-head", "2", "--d-model", "64", "--d-mlp", "64",
            "--lr", "0.002", "--out", str(run_dir), "--resume"]  # fmt: skip
    assert main(argv) == 2
    err = one_line_error(capsys, "--lr 0.003 (now 0.002)", "--d-model 32 (now 64)")
    assert "{" not in err  # not two whole dicts


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("file", "this already exists as a file; give a folder path"),
        ("under_file", "a part of this path is a file, not a folder"),
    ],
)
def test_an_out_folder_that_cannot_be_made_fails_before_training(tmp_path, capsys, where,
                                                                 message):  # fmt: skip
    (tmp_path / "f").write_text("not a folder", encoding="utf-8")
    out = tmp_path / "f" if where == "file" else tmp_path / "f" / "run"
    assert main([*COPY, "--steps", "100000", "--out", str(out)]) == 2  # would take minutes
    one_line_error(capsys, f"{out if where == 'file' else out}", message)


def test_a_read_only_out_folder_fails_before_training(tmp_path, capsys, monkeypatch):
    """Read-only as the operating system reports it (root, as in CI, may write anywhere,
    so the refusal is simulated where the lock file is created)."""
    import minitf.run_folder as run_folder

    def read_only(path, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(run_folder.os, "open", read_only)
    assert main([*COPY, "--steps", "100000", "--out", str(tmp_path / "run")]) == 2
    one_line_error(capsys, ".minitf-lock: the file system is read-only; choose a folder")


def test_too_little_disk_space_fails_before_training(tmp_path, capsys, monkeypatch):
    import minitf.run_folder as run_folder

    monkeypatch.setattr(run_folder.shutil, "disk_usage", lambda path: SimpleNamespace(free=1000))
    assert main([*COPY, "--steps", "100000", "--out", str(tmp_path / "run")]) == 2
    one_line_error(capsys, "has 0 MB free but this run's checkpoints need about")


def test_a_full_disk_at_a_save_is_one_sentence_and_keeps_the_last_checkpoint(
    tmp_path, capsys, monkeypatch
):
    out = tmp_path / "run"
    real_savez = np.savez
    saves = []

    def savez(file, **arrays):
        saves.append(file)
        if len(saves) > 2:  # the second checkpoint (params, opt_state each) hits a full disk
            raise OSError(errno.ENOSPC, "No space left on device", file.name)
        real_savez(file, **arrays)

    monkeypatch.setattr("minitf.checkpoint.np.savez", savez)
    assert main([*COPY, "--checkpoint-every", "10", "--out", str(out)]) == 2
    one_line_error(capsys, "params.npz: the disk is full; free some space")
    monkeypatch.undo()
    from minitf.checkpoint import load_checkpoint

    assert load_checkpoint(out / "checkpoint").step == 10


def test_lens_out_under_a_file_is_one_sentence(run_dir, tmp_path, capsys):
    (tmp_path / "f").write_text("x", encoding="utf-8")
    assert main(["lens", str(run_dir), "123=", "--out", str(tmp_path / "f" / "lens.png")]) == 2
    one_line_error(capsys, f"{tmp_path / 'f'}: this already exists as a file")


# --- damaged files ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("task", {"name": "copy", "length": "3"}, "its task can't be rebuilt: task copy's "
         "length must be int; got '3'"),
        ("task", [1, 2], "'task' must be null or an object with a \"name\"; got [1, 2]"),
        ("step", "abc", "'step' must be a whole number >= 0; got 'abc'"),
        ("step", 3.5, "'step' must be a whole number >= 0; got 3.5"),
        ("config", {"d_model": "32"}, "its 'config' is damaged"),
    ],
)
def test_damaged_checkpoint_fields_name_the_file_and_field(run_dir, tmp_path, capsys, field,
                                                           value, message):  # fmt: skip
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    path = run / "checkpoint" / "config.json"
    description = json.loads(path.read_text(encoding="utf-8"))
    if field == "config":
        description["config"].update(value)
    else:
        description[field] = value
    path.write_text(json.dumps(description), encoding="utf-8")
    assert main(["eval", str(run)]) == 2
    one_line_error(capsys, str(path), message)


def test_non_finite_weights_load_with_a_one_line_warning(run_dir, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    path = run / "checkpoint" / "params.npz"
    with np.load(path) as data:
        arrays = dict(data)
    arrays["blocks.0.mlp.w_in"][0, 0] = np.nan
    np.savez(path, **arrays)
    assert main(["eval", str(run), "--n", "10"]) == 0
    err = capsys.readouterr().err
    assert err == (f"minitf: warning: {path}: blocks.0.mlp.w_in holds NaN or infinite values, "
                   "so the model's outputs will be NaN (was it saved from a run that "
                   "diverged?)\n")  # fmt: skip


def write_gpt2_folder(folder, d: int = 8, vocab: int = 20, positions: int = 6) -> dict:
    """A tiny random GPT-2 folder (config.json + model.safetensors), without torch."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    shapes = {"wte.weight": (vocab, d), "wpe.weight": (positions, d), "ln_f.weight": (d,),
              "ln_f.bias": (d,)}  # fmt: skip
    for part, shape in {"ln_1.weight": (d,), "ln_1.bias": (d,), "ln_2.weight": (d,),
                        "ln_2.bias": (d,), "attn.c_attn.weight": (d, 3 * d),
                        "attn.c_attn.bias": (3 * d,), "attn.c_proj.weight": (d, d),
                        "attn.c_proj.bias": (d,), "mlp.c_fc.weight": (d, 4 * d),
                        "mlp.c_fc.bias": (4 * d,), "mlp.c_proj.weight": (4 * d, d),
                        "mlp.c_proj.bias": (d,)}.items():  # fmt: skip
        shapes[f"h.0.{part}"] = shape
    rng = np.random.default_rng(0)
    tensors = {name: rng.normal(size=shape).astype(np.float32) for name, shape in shapes.items()}
    save_file(tensors, str(folder / "model.safetensors"))
    config = {"model_type": "gpt2", "n_embd": d, "n_layer": 1, "n_head": 2, "vocab_size": vocab,
              "n_positions": positions}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return config


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("config_list", "config.json should be one JSON object of settings; got a list"),
        ("n_embd_null", "config.json: n_embd must be a positive whole number; got None"),
        ("tie_string", "config.json: tie_word_embeddings must be true or false (a JSON "
         "boolean, no quotes); got 'false'"),
        ("empty", "model.safetensors is damaged or not a safetensors file"),
        ("truncated", "model.safetensors is damaged or not a safetensors file"),
        ("random", "model.safetensors is damaged or not a safetensors file"),
    ],
)
def test_damaged_gpt2_folders_give_one_sentence(tmp_path, damage, message):
    pytest.importorskip("safetensors")
    config = write_gpt2_folder(tmp_path)
    weights, config_path = tmp_path / "model.safetensors", tmp_path / "config.json"
    if damage == "config_list":
        config_path.write_text("[1, 2]", encoding="utf-8")
    elif damage in ("n_embd_null", "tie_string"):
        config.update({"n_embd": None} if damage == "n_embd_null"
                      else {"tie_word_embeddings": "false"})  # fmt: skip
        config_path.write_text(json.dumps(config), encoding="utf-8")
    elif damage == "empty":
        weights.write_bytes(b"")
    elif damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:300])
    else:
        weights.write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.raises(ValueError) as e:
        gpt2.load(tmp_path)
    assert message in str(e.value) and str(tmp_path) in str(e.value)


def test_gpt2_weights_with_nan_warn_and_name_the_tensor(tmp_path):
    pytest.importorskip("safetensors")
    from safetensors.numpy import load_file, save_file

    write_gpt2_folder(tmp_path)
    tensors = load_file(str(tmp_path / "model.safetensors"))
    tensors["h.0.attn.c_proj.weight"][1, 1] = np.inf
    save_file(tensors, str(tmp_path / "model.safetensors"))
    with pytest.warns(UserWarning, match=r"model.safetensors: h.0.attn.c_proj.weight holds NaN "
                      "or infinite values"):  # fmt: skip
        gpt2.load(tmp_path)


# --- bpe ---------------------------------------------------------------------------------


def test_bpe_train_refuses_an_empty_file_and_a_folder(tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    assert main(["bpe", "train", str(tmp_path / "empty.txt"), "--out", str(tmp_path / "o")]) == 2
    one_line_error(capsys, "empty.txt is empty; give bpe train some text to learn from")
    assert main(["bpe", "train", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    one_line_error(capsys, f"{tmp_path}: this is a folder; give the path of a file")
    assert not (tmp_path / "o").exists()


def test_bpe_train_refuses_a_special_token_gpt2_files_cannot_hold(tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text("the cat sat on the mat " * 50, encoding="utf-8")
    out = tmp_path / "o"
    assert main(["bpe", "train", str(text), "--vocab-size", "270", "--out", str(out),
                 "--special", "e"]) == 2  # fmt: skip
    captured = capsys.readouterr()
    assert "bpe merges" not in captured.err  # refused before training started
    assert "special token 'e' has the same text as the byte token 'e'" in captured.err
    # one spelled like a merged token (GPT-2 writes " the" as "Ġthe") is found after training,
    # before any file is written
    assert main(["bpe", "train", str(text), "--vocab-size", "270", "--out", str(out),
                 "--special", "Ġthe"]) == 2  # fmt: skip
    assert "are both 'Ġthe'" in capsys.readouterr().err
    assert not out.exists()


def test_bpe_encode_names_the_line_of_a_non_utf8_merges_file(tmp_path, capsys):
    (tmp_path / "vocab.json").write_text(json.dumps(_byte_vocab()), encoding="utf-8")
    (tmp_path / "merges.txt").write_bytes(b"#version: 0.2\nt h\n\xff\xfe x\n")
    assert main(["bpe", "encode", str(tmp_path), "hi"]) == 2
    one_line_error(capsys, "merges.txt, line 3: not UTF-8 text")


def test_bpe_encode_refuses_an_empty_merges_file_beside_a_full_vocab(tmp_path, capsys):
    """With no merges, every merged token of vocab.json would silently become a special
    token (and text would encode byte by byte)."""
    vocab = _byte_vocab()
    pieces = ["th", "he", "in", "an", "er", "on", "re", "at", "en", "nd", "ti", "es", "or",
              "te", "of", "ed", "is", "it", "al", "ar", "st", "to", "nt", "ng"]  # fmt: skip
    for text in pieces + ["the", "and"]:
        vocab[text] = len(vocab)
    (tmp_path / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (tmp_path / "merges.txt").write_text("", encoding="utf-8")
    assert main(["bpe", "encode", str(tmp_path), "the"]) == 2
    one_line_error(capsys, "tokens that", "merges.txt never makes", "looks empty or cut short")


def _byte_vocab() -> dict[str, int]:
    from minitf.bpe import bytes_to_unicode

    return {char: i for i, char in enumerate(bytes_to_unicode().values())}
