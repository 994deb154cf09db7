"""Text as a task: the split and the windows, bits per byte, the tokenisation cache, a tiny
language model, text checkpoints through the CLI, and bad input."""

from __future__ import annotations

import json
import math
import os

import jax
import numpy as np
import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from minitf import corpora, long_text
from minitf.bpe import PATTERNS, Tokenizer
from minitf.cli import main
from minitf.explore import data as explore_data
from minitf.lens import lens_depth, logit_lens
from minitf.model import init_params
from minitf.sample import generate, generate_long
from minitf.text import (
    DEMO_PROMPT,
    bits_per_byte,
    score_windows,
    text_task,
    token_byte_lengths,
    validation_windows,
)
from minitf.token_groups import group_similarity, nearest_by_cosine
from minitf.train import load_checkpoint, train

TINY = ["--n-layer", "1", "--n-head", "2", "--d-model", "32", "--d-mlp", "64"]
WORDS = ("the cat dog sat ran on under a mat hat big small red and then it was here there "
         "one two three").split()  # fmt: skip


def sentences(n: int, seed: int = 0) -> str:
    """Made-up text with some structure: sentences of common words."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        words = [WORDS[i] for i in rng.integers(0, len(WORDS), rng.integers(3, 9))]
        out.append(" ".join(words).capitalize() + rng.choice([".", "!", "?"]))
    return "\n".join(out) + "\n"


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    """Every test tokenises into its own module's cache, never the user's."""
    folder = tmp_path_factory.getbasetemp() / "text-cache"
    monkeypatch.setenv("MINITF_CACHE", str(folder))
    return folder


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "sentences.txt"
    path.write_text(sentences(3000), encoding="utf-8")
    return path


# --- long texts in pieces ----------------------------------------------------------------

TRICKY = ["a", "b", " ", "\n", "\r", "\t", "'", "s", "1", "2", ".", "é", "\u00a0", "\u2028",
          "\x1c", "\x85", "  ", "\n\n", "'ll", "🐠", "日本"]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TRICKY), max_size=80), st.integers(1, 6))
def test_pieces_split_like_the_whole_text(parts, size):
    text = "".join(parts)
    for name in ("gpt2", "gpt4"):
        split = regex.compile(PATTERNS[name]).findall
        pieces = list(long_text.pieces(text, name, size))
        assert "".join(pieces) == text
        assert [c for p in pieces for c in split(p)] == split(text)


def test_file_pieces_decode_across_blocks_and_name_a_bad_byte(tmp_path, monkeypatch):
    monkeypatch.setattr(long_text, "READ_BYTES", 7)  # blocks that cut characters apart
    monkeypatch.setattr(long_text, "PIECE_CHARS", 5)
    text = "héllo wörld\n🐠 fish\nnext line\n" * 20
    path = tmp_path / "t.txt"
    path.write_text(text, encoding="utf-8")
    pieces = list(long_text.file_pieces(path, "gpt4"))
    assert "".join(pieces) == text and len(pieces) > 1
    split = regex.compile(PATTERNS["gpt4"]).findall
    assert [c for p in pieces for c in split(p)] == split(text)
    raw = text.encode("utf-8")
    path.write_bytes(raw[:100] + b"\xff" + raw[100:])
    with pytest.raises(ValueError, match="the byte at offset 100 does not decode"):
        list(long_text.file_pieces(path, "gpt4"))


def test_bpe_trained_on_file_pieces_is_the_same_tokenizer(tmp_path, monkeypatch):
    monkeypatch.setattr(long_text, "READ_BYTES", 1000)
    monkeypatch.setattr(long_text, "PIECE_CHARS", 300)
    text = sentences(400, seed=1)
    path = tmp_path / "t.txt"
    path.write_text(text, encoding="utf-8")
    whole = Tokenizer.train(text, 320)
    pieced = Tokenizer.train(long_text.file_pieces(path, "gpt4"), 320)
    assert pieced.merges == whole.merges
    assert whole.encode(text) == [i for p in long_text.pieces(text, "gpt4") for i in
                                  whole.encode(p)]  # fmt: skip


# --- the task: split, windows, cache ---------------------------------------------------------


def test_split_by_position_and_no_validation_token_in_a_training_window(tmp_path):
    # the validation part (last 10%) is the only place with the letter Z
    text = sentences(800) + "Z" * 5 + sentences(80, seed=2).replace("a", "Z")
    path = tmp_path / "z.txt"
    path.write_text(text, encoding="utf-8")
    task = text_task(path, tokenizer="char", context=16, progress=False)
    raw = text.encode("utf-8")
    cut = math.floor(len(raw) * 0.9)
    assert task.tokenizer.decode(task.train_ids) == raw[:cut].decode("utf-8")
    assert task.tokenizer.decode(task.val_ids) == raw[cut:].decode("utf-8")
    z = task.tokenizer.encode("Z")[0]
    assert z not in set(task.train_ids.tolist()) and z in set(task.val_ids.tolist())
    for i in range(50):
        tokens, mask = task.batch(np.random.default_rng([0, i]), 32)  # (B, T+1)
        assert tokens.shape == mask.shape == (32, 17)
        assert not (tokens == z).any()
        assert mask[:, :-1].all() and not mask[:, -1].any()  # every next token is scored
    # each row is a contiguous stretch of the training ids
    train_text = task.tokenizer.decode(task.train_ids)
    for row in tokens:
        assert task.tokenizer.decode(row) in train_text
    windows = validation_windows(task.val_ids, 16, 10**6)  # all of them: each token once
    scored = windows[:, 1:].ravel()
    assert np.array_equal(scored, np.asarray(task.val_ids)[1 : 1 + scored.size])
    picked = validation_windows(task.val_ids, 16, 5, seed=3)
    assert np.array_equal(picked, validation_windows(task.val_ids, 16, 5, seed=3))
    assert not np.array_equal(picked, validation_windows(task.val_ids, 16, 5, seed=4))


def test_bpe_task_ids_decode_to_the_text_and_fit_uint16(corpus_file):
    task = text_task(corpus_file, vocab_size=300, context=16, progress=False)
    assert task.train_ids.dtype == np.uint16 and task.tokenizer.vocab_size == 300
    text = corpus_file.read_text(encoding="utf-8")
    both = task.tokenizer.decode(task.train_ids) + task.tokenizer.decode(task.val_ids)
    assert both == text
    # the tokenizer was trained on the training part only
    raw = text.encode("utf-8")
    alone = Tokenizer.train(raw[: math.floor(len(raw) * 0.9)].decode("utf-8"), 300)
    assert alone.merges == task.tokenizer.merges


def test_bits_per_byte_by_hand():
    # 2 nats per token, 10 tokens, 40 bytes: 20 nats = 20 / ln 2 = 28.85 bits over 40 bytes
    assert bits_per_byte(2.0, 10, 40) == pytest.approx(20 / math.log(2) / 40)
    assert bits_per_byte(2.0, 10, 40) == pytest.approx(0.7213, abs=1e-4)
    with pytest.raises(ValueError):
        bits_per_byte(1.0, 0, 10)


def test_a_model_that_knows_nothing_scores_log_v(tmp_path):
    # all logits equal: every token costs log V nats; ASCII characters are one byte each,
    # so bits per byte is log2 V
    path = tmp_path / "a.txt"
    path.write_text(sentences(300), encoding="utf-8")
    task = text_task(path, tokenizer="char", context=8, progress=False)
    config = task.config(n_layer=1, n_head=1, d_model=8, d_mlp=8)
    params = jax.tree.map(np.asarray, init_params(config, jax.random.key(0)))
    params["unembed"] = np.zeros_like(params["unembed"])
    score = task.score(params, config, n=40)
    V = task.tokenizer.vocab_size
    assert score.val_loss == pytest.approx(math.log(V), rel=1e-5)
    assert score.bits_per_byte == pytest.approx(math.log2(V), rel=1e-5)
    assert score.n_tokens == score.n_bytes == 40 * 8


def test_token_byte_lengths_count_utf8_bytes(tmp_path):
    path = tmp_path / "u.txt"
    path.write_text(("é🐠a b\n" * 40) + sentences(40), encoding="utf-8")
    task = text_task(path, tokenizer="char", context=8, progress=False)
    lengths = dict(zip(task.tokenizer.chars, token_byte_lengths(task.tokenizer), strict=True))
    assert lengths["a"] == 1 and lengths["é"] == 2 and lengths["🐠"] == 4
    windows = validation_windows(task.val_ids, 8, 1000)
    config = task.config(n_layer=1, n_head=1, d_model=8, d_mlp=8)
    params = init_params(config, jax.random.key(0))
    score = score_windows(params, config, windows, token_byte_lengths(task.tokenizer))
    scored = task.tokenizer.decode(windows[:, 1:].ravel())
    assert score.n_bytes == len(scored.encode("utf-8"))


def test_the_cache_is_reused_and_invalidated_when_the_corpus_changes(tmp_path, cache):
    path = tmp_path / "c.txt"
    path.write_text(sentences(500), encoding="utf-8")
    first = text_task(path, vocab_size=280, context=8, progress=False)
    folders = set((cache / "text").iterdir())
    again = text_task(path, vocab_size=280, context=8, progress=False)
    assert set((cache / "text").iterdir()) == folders  # nothing new was tokenised
    assert np.array_equal(first.train_ids, again.train_ids)
    path.write_text(sentences(500).replace("cat", "cow"), encoding="utf-8")
    changed = text_task(path, vocab_size=280, context=8, progress=False)
    assert len(set((cache / "text").iterdir()) - folders) == 1
    assert changed.spec["corpus"]["sha256"] != first.spec["corpus"]["sha256"]
    assert "cow" in changed.tokenizer.decode(changed.train_ids)


def test_a_tiny_model_beats_the_unigram_entropy_in_a_few_dozen_steps(corpus_file):
    task = text_task(corpus_file, tokenizer="char", context=32, progress=False)
    config = task.config(n_layer=1, n_head=2, d_model=32, d_mlp=64)
    result = train(config, task, steps=40, batch_size=32, lr=1e-2, seed=0, progress=False,
                   eval_every=40, eval_n=50)  # fmt: skip
    entropy = task.unigram_entropy()
    assert result.history["val_loss"][-1] < entropy - 0.1, (result.history, entropy)
    assert result.history["eval_step"] == [40]


def test_resume_is_bit_identical_for_text(corpus_file, tmp_path):
    task = text_task(corpus_file, tokenizer="char", context=16, progress=False)
    config = task.config(n_layer=1, n_head=2, d_model=16, d_mlp=32)
    run = dict(steps=6, batch_size=8, lr=3e-3, seed=5, progress=False)
    straight = train(config, task, **run, out=tmp_path / "a")
    train(config, task, **{**run, "steps": 6}, out=tmp_path / "b", callback=lambda s, p: s == 3)
    resumed = train(config, task, **run, out=tmp_path / "b", resume=True)
    for a, b in zip(jax.tree_util.tree_leaves(straight.params),
                    jax.tree_util.tree_leaves(resumed.params), strict=True):  # fmt: skip
        assert np.array_equal(np.asarray(a), np.asarray(b))
    ckpt = load_checkpoint(tmp_path / "b" / "checkpoint")
    assert ckpt.task["name"] == "text" and ckpt.task["corpus"]["sha256"]
    assert np.array_equal(ckpt.data["validation"], task.val_ids)


# --- the command line ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def text_run(tmp_path_factory, corpus_file):
    out = tmp_path_factory.mktemp("textrun")
    env = {"MINITF_CACHE": str(tmp_path_factory.getbasetemp() / "text-cache")}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        argv = ["train", "text", "--corpus", str(corpus_file), "--vocab-size", "300",
                "--seq-len", "16", "--steps", "30", "--batch-size", "16", "--eval-every", "15",
                "--eval-n", "20", "--out", str(out), "--no-progress", *TINY]  # fmt: skip
        assert main(argv) == 0
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return out


def test_train_text_writes_metrics_with_validation_loss(text_run):
    metrics = json.loads((text_run / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["task"] == "text" and metrics["history"]["eval_step"] == [15, 30]
    assert len(metrics["history"]["val_loss"]) == 2 and metrics["bits_per_byte"] > 0
    assert (text_run / "loss.png").is_file()
    assert (text_run / "checkpoint" / "tokenizer.bpe").is_file()


def test_eval_json_for_text(text_run, capsys):
    assert main(["eval", str(text_run), "--json", "--n", "25"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(report) == {"task", "val_loss", "bits_per_byte", "n_tokens"}
    assert report["task"] == "text" and report["n_tokens"] == 25 * 16
    ckpt = load_checkpoint(text_run / "checkpoint")
    windows = validation_windows(ckpt.data["validation"], 16, 25)
    want = score_windows(ckpt.params, ckpt.config, windows, token_byte_lengths(ckpt.tokenizer))
    assert report["val_loss"] == pytest.approx(want.val_loss)
    assert report["bits_per_byte"] == pytest.approx(want.bits_per_byte)


def test_sample_from_a_text_checkpoint_past_its_context(text_run, capsys):
    argv = ["sample", str(text_run), "--prompt", "The cat", "--max-new-tokens", "50",
            "--seed", "3"]  # fmt: skip
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert first.startswith("The cat") and len(first) > len("The cat") + 50  # 50 > context 16
    assert main(argv) == 0
    assert capsys.readouterr().out == first  # same seed, same text
    assert main(["sample", str(text_run), "--prompt", "The cat", "--max-new-tokens", "5",
                 "--temperature", "0"]) == 0  # fmt: skip


def test_lens_on_a_text_checkpoint_shows_pieces(text_run, capsys, tmp_path):
    assert main(["lens", str(text_run), "The cat sat on", "--out", str(tmp_path / "l.png")]) == 0
    printed = capsys.readouterr().out
    assert "␣sat" in printed or "␣s" in printed  # spaces shown as ␣ inside the pieces
    assert (tmp_path / "l.png").is_file()


def _page_data(path) -> dict:
    page = path.read_text(encoding="utf-8")
    return json.loads(page.split('id="minitf-data">')[1].split("</script>")[0])


def test_explore_a_text_checkpoint_shows_lines_of_its_validation_text(text_run, capsys):
    assert main(["explore", str(text_run)]) == 0
    assert f"wrote {text_run / 'explore.html'}" in capsys.readouterr().out
    data = _page_data(text_run / "explore.html")
    ckpt = load_checkpoint(text_run / "checkpoint")
    val_text = ckpt.tokenizer.decode(ckpt.data["validation"].tolist())
    texts = [a["text"] for a in data["inputs"]]
    assert len(texts) == 2 and len(set(texts)) == 2
    for a in data["inputs"]:  # whole sentences of text the model never trained on
        assert a["text"] in val_text.splitlines() and a["text"][0].isupper()
        assert len(a["ids"]) <= ckpt.config.max_len and a["note"] is None
    assert "language model (sentences.txt, bpe tokens)" in data["title"]
    # typed inputs still win, and a text task's spec alone gives the sample prompt
    assert main(["explore", str(text_run), "--text", "The cat sat"]) == 0
    assert [a["text"] for a in _page_data(text_run / "explore.html")["inputs"]] == ["The cat sat"]
    assert explore_data.default_inputs(ckpt.task) == [DEMO_PROMPT]


def test_validation_sentences_fit_the_context():
    tok = Tokenizer.train(sentences(200), 300)
    long_line = "Then " + " ".join(WORDS * 5) + "."
    ids = np.asarray(tok.encode("half a line\n" + long_line + "\n" + sentences(50)))
    got = explore_data.validation_sentences(tok, ids, max_len=12)
    assert len(got) == 2 and got[0] == " ".join(long_line.split(" ")[: len(got[0].split(" "))])
    assert all(len(tok.encode(line)) <= 12 and line[0].isupper() for line in got)
    short = explore_data.validation_sentences(tok, np.asarray(tok.encode("no prose here")), 64)
    assert short == ["no prose here"]  # no line to choose: the text itself


def test_train_text_refuses_a_folder_holding_a_run(text_run, corpus_file, capsys):
    argv = ["train", "text", "--corpus", str(corpus_file), "--vocab-size", "300", "--seq-len",
            "16", "--steps", "2", "--out", str(text_run), "--no-progress", *TINY]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "already holds a run (a checkpoint at step 30)" in err and "--overwrite" in err
    assert load_checkpoint(text_run / "checkpoint").step == 30  # untouched


def test_ctrl_c_stops_train_text_and_says_where_the_checkpoint_is(corpus_file, tmp_path, cache):
    """As `minitf train TASK` does (tests/test_interrupts.py): a Ctrl-C between steps."""
    import subprocess
    import sys

    from minitf import faults

    out = tmp_path / "run"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root, "JAX_PLATFORMS": "cpu", "MINITF_CACHE": str(cache),
           faults.ENV: "sigint@after-step-3"}  # fmt: skip
    argv = [sys.executable, "-m", "minitf", "train", "text", "--corpus", str(corpus_file),
            "--vocab-size", "300", "--seq-len", "16", "--steps", "100000", "--batch-size", "8",
            "--out", str(out), "--no-progress", *TINY]  # fmt: skip
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr and "validation loss" not in done.stdout
    assert (f"interrupted after step 3; the checkpoint is in {out / 'checkpoint'} (continue "
            "with --resume") in done.stderr  # fmt: skip
    ckpt = load_checkpoint(out / "checkpoint")
    assert ckpt.step == 3 and len(ckpt.data["validation"]) > 0


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (None, ["--corpus", "/nonexistent/corpus.txt"], "does not exist"),
        (b"", [], "is empty"),
        (b"good text\n" * 50 + b"\xfe bad", [], "the byte at offset 500 does not decode"),
        (b"a short text\n", ["--tokenizer", "char"], "is too short"),
        (b"some text\n" * 200, ["--vocab-size", "100"], "--vocab-size must be at least 257"),
        (b"some text\n" * 200, ["--tokenizer", "char", "--vocab-size", "300"],
         "--vocab-size applies to --tokenizer bpe only"),
        (b"some text\n" * 200, ["--digits", "3"], "--digits is a toy task's setting"),
    ],
)
def test_bad_text_input_is_one_line_and_exit_2(make, args, message, tmp_path, capsys):
    argv = ["train", "text", "--steps", "2", "--no-progress", *TINY]
    if make is not None:
        path = tmp_path / "corpus.txt"
        path.write_bytes(make)
        argv += ["--corpus", str(path)]
    assert main(argv + args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("minitf: error:") and message in err, err


def test_text_flags_on_a_toy_task_are_refused(capsys):
    assert main(["train", "copy", "--corpus", "x.txt"]) == 2
    assert "--corpus applies to `minitf train text` only" in capsys.readouterr().err


def test_prompt_characters_a_char_model_lacks_are_named(tmp_path, corpus_file, capsys):
    out = tmp_path / "charrun"
    assert main(["train", "text", "--corpus", str(corpus_file), "--tokenizer", "char",
                 "--seq-len", "8", "--steps", "2", "--batch-size", "4", "--out", str(out),
                 "--no-progress", *TINY]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["sample", str(out), "--prompt", "Thé cat€"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'é' (U+00E9)" in err and "'€' (U+20AC)" in err


# --- the pieces the lessons build on ---------------------------------------------------------


def test_generate_long_slides_past_max_len_and_starts_like_generate(corpus_file):
    task = text_task(corpus_file, tokenizer="char", context=8, progress=False)
    config = task.config(n_layer=1, n_head=2, d_model=16, d_mlp=32)
    params = init_params(config, jax.random.key(0))
    prompt = task.tokenizer.encode("The ")
    long = generate_long(params, config, prompt, 30, temperature=0)
    assert long.shape == (34,) and np.array_equal(long[:4], prompt)
    short = generate(params, config, prompt, 4, temperature=0)
    assert np.array_equal(long[:8], short)  # the first window is plain generation
    key = jax.random.key(1)
    assert np.array_equal(generate_long(params, config, prompt, 30, temperature=1.0, key=key),
                          generate_long(params, config, prompt, 30, temperature=1.0, key=key))


def test_lens_depth_agrees_with_the_one_sequence_lens(corpus_file):
    task = text_task(corpus_file, tokenizer="char", context=16, progress=False)
    config = task.config(n_layer=2, n_head=2, d_model=16, d_mlp=32)
    params = train(config, task, steps=20, batch_size=16, lr=1e-2, progress=False).params
    tokens, _ = task.batch(np.random.default_rng(0), 5)
    depth = lens_depth(params, config, tokens[:, :-1], batch_size=2)
    assert depth.ranks.shape == depth.kl.shape == (3, 5, 16)
    assert (depth.ranks[-1] == 0).all() and np.allclose(depth.kl[-1], 0, atol=1e-5)
    for n in range(5):
        lens = logit_lens(params, config, tokens[n, :-1])
        for t in range(16):
            final = int(np.argmax(lens.log_probs[-1, t]))
            assert np.array_equal(depth.ranks[:, n, t], lens.rank(final, t))
            assert depth.first_top1[n, t] == lens.first_top1_layer(final, t)


def test_group_similarity_finds_planted_groups_and_not_random_ones():
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(60, 32))  # (V, D)
    among = np.arange(60)
    groups = {"planted": [1, 2, 3, 4, 5], "random": [10, 20, 30, 40, 50]}
    matrix[groups["planted"]] += 3 * rng.normal(size=32)  # one shared direction
    scores = group_similarity(matrix, groups, among)
    assert scores["planted"].within > 0.8 and scores["planted"].neighbour_in_group == 1.0
    assert abs(scores["random"].within - scores["random"].random) < 4 * scores["random"].random_sd
    near = nearest_by_cosine(matrix, 1, 4, among)
    assert {i for i, _ in near} == {2, 3, 4, 5}


def test_python_docs_is_deterministic_and_says_where_it_comes_from(monkeypatch):
    files = corpora.stdlib_files()[:5]
    monkeypatch.setattr(corpora, "stdlib_files", lambda: files)
    first, second = corpora.python_docs(), corpora.python_docs()
    assert first.sha256 == second.sha256 and first.n_bytes > 100_000
    assert "pydoc_data" in first.source and not first.note
    assert corpora.python_docs_text(files) == first.path.read_text(encoding="utf-8")


def test_python_docs_without_pydoc_data_falls_back_to_docstrings(monkeypatch):
    files = corpora.stdlib_files()[:5]
    monkeypatch.setattr(corpora, "stdlib_files", lambda: files)
    monkeypatch.setattr(corpora, "_topics_file", lambda: None)
    monkeypatch.setitem(__import__("sys").modules, "pydoc_data.topics", None)  # import fails
    docs = corpora.python_docs()
    assert "no pydoc_data" in docs.note and "docstrings" in docs.source
    assert docs.path.read_text(encoding="utf-8") == "\n\n".join(
        d for f in files for d in corpora.docstrings(f)) + "\n"


def test_demo_text_writes_everything_it_promises(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = ["demo", "text", "--steps", "4", "--batch-size", "4", "--eval-n", "8", "--out",
            str(out), "--no-progress", *TINY]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    for part in ("corpus python-docs", "validation loss", "step     0 (val loss", "T = 1.5",
                 "nearest tokens in embedding space", "logit lens on"):  # fmt: skip
        assert part in printed, part
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["task"] == "text" and metrics["bits_per_byte"] > 0
    for name in ("checkpoint/params.npz", "checkpoint/tokenizer.bpe", "loss.png",
                 "lens_heatmap.png", "embeddings.png", "explore.html"):  # fmt: skip
        assert (out / name).is_file(), f"the demo did not write {name}"
    assert len(_page_data(out / "explore.html")["inputs"]) == 2  # lines of validation text
    # like `minitf demo`: a folder holding a run is refused before any work
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "already holds a run (a checkpoint at step 4)" in err and "--overwrite" in err


def test_a_sample_prints_on_one_line_whatever_the_model_wrote():
    """Line breaks other than newline (a model may write \\x1c or U+2028) never split a
    sample's line; they show as their bytes."""
    from minitf.text_commands import _one_line

    shown = _one_line("a\nb\x1cc\u2028d\x0f é\tz")
    assert shown == "a⏎b<0x1C>c<0xE2><0x80><0xA8>d<0x0F> é\tz"
    assert len(shown.splitlines()) == 1
    assert _one_line("x" * 200, width=10) == "x" * 9 + "…"


def test_demo_text_needs_evaluations_to_show(tmp_path, capsys):
    """--eval-every 0 means never, but the demo shows the model at every evaluation."""
    assert main(["demo", "text", "--eval-every", "0", "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--eval-every must be a positive number" in err, err
    assert not (tmp_path / "d").exists()
