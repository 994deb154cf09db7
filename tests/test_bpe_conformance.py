"""minitf's BPE against independent references: Hugging Face `tokenizers`, `tiktoken`, the
real GPT-2 files, and a reference run of a trainer with the same objective."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_bpe import corpus  # tests/ is on sys.path under pytest's default import mode

from minitf.bpe import GPT2_PATTERN, GPT4_PATTERN, Tokenizer, unicode_to_bytes

hf = pytest.importorskip("tokenizers")
tiktoken = pytest.importorskip("tiktoken")

# text built to hit the corners of the split patterns and of UTF-8
# fmt: off
PIECES = [
    "👩‍👩‍👧‍👦", "🏳️‍🌈", "🐠", "e\u0301", "n\u0303\u0323",  # ZWJ sequences, combining marks
    "日本語", "中文", "한국어", "ﷺ", "ǅ", "Ⅻ", "٣", "\U0001d7d8",  # scripts, odd letters/digits
    "   ", "\t", "\n\n", "\r\n", " \n ", "\u00a0", "\u2028", "\u2029", "\u3000",  # spaces
    "\x1c\x1f", "\x85", "\u200b", "\ufeff", "\x00", "\x7f",  # space or not, depending on whom
    "don't", "we'll", "'s", "'S", "I'M", "THEY'RE", "123456", "3.14", "x²", "<|endoftext|>",
]
# fmt: on
NASTY_TEXT = st.lists(
    st.one_of(
        st.sampled_from(PIECES),
        # any character assigned in this Python's Unicode tables (3.11: Unicode 14.0).
        # Not "Cn": characters assigned later are letters to the `regex` module's newer
        # tables but not to tiktoken's or tokenizers' older ones, so the splits differ
        # there (e.g. U+323B0, Unicode 15); for Unicode 14.0 every character agrees.
        st.text(st.characters(exclude_categories=("Cs", "Cn")), max_size=8),
    ),
    max_size=30,
).map("".join)


def hf_from_files(folder: Path):
    """GPT-2's setup in `tokenizers`: BPE from the two files, byte-level split and decoder."""
    model = hf.models.BPE.from_file(str(folder / "vocab.json"), str(folder / "merges.txt"))
    tok = hf.Tokenizer(model)
    # use_regex: GPT-2's split pattern; add_prefix_space=False: GPT-2 adds no leading space
    tok.pre_tokenizer = hf.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = hf.decoders.ByteLevel()
    return tok


def tiktoken_from(tok: Tokenizer, pattern: str):
    """`tiktoken` ranks every token by its id: the same order as minitf's merges."""
    special = set(tok.special_tokens.values())
    ranks = {tok.token_bytes(i): i for i in range(tok.vocab_size) if i not in special}
    return tiktoken.Encoding("minitf", pat_str=pattern, mergeable_ranks=ranks, special_tokens={})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A minitf tokenizer (GPT-2 pattern) with its `tokenizers` and `tiktoken` twins."""
    tok = Tokenizer.train(corpus(300_000), 1024, pattern="gpt2")
    folder = tmp_path_factory.mktemp("gpt2-files")
    tok.save_gpt2(folder)
    return tok, hf_from_files(folder), tiktoken_from(tok, GPT2_PATTERN)


def test_trained_tokenizer_matches_references_on_real_text(trained):
    tok, hf_tok, tt = trained
    text = corpus(600_000)  # half of it was not seen in training
    ids = tok.encode(text)
    assert hf_tok.encode(text).ids == ids
    assert tt.encode_ordinary(text) == ids
    assert hf_tok.decode(ids) == text


@settings(max_examples=200, deadline=None)
@given(NASTY_TEXT)
def test_trained_tokenizer_matches_references_on_any_text(trained, text):
    tok, hf_tok, tt = trained
    ids = tok.encode(text)
    assert hf_tok.encode(text).ids == ids
    assert tt.encode_ordinary(text) == ids
    assert tok.decode(ids) == text


@pytest.fixture(scope="module")
def trained_gpt4():
    """A minitf tokenizer with GPT-4's split pattern, and its `tiktoken` twin."""
    tok = Tokenizer.train(corpus(100_000), 600, pattern="gpt4")
    return tok, tiktoken_from(tok, GPT4_PATTERN)


def test_gpt4_pattern_matches_tiktoken(trained_gpt4):
    tok, tt = trained_gpt4
    text = corpus(200_000) + "".join(PIECES) + " 1234567 \n\n  x\r\n"
    assert tt.encode_ordinary(text) == tok.encode(text)


@settings(max_examples=100, deadline=None)
@given(NASTY_TEXT)
def test_gpt4_pattern_matches_tiktoken_on_any_text(trained_gpt4, text):
    tok, tt = trained_gpt4
    assert tt.encode_ordinary(text) == tok.encode(text)


@pytest.fixture(scope="module")
def gpt2():
    """The real GPT-2 tokenizer files, read by minitf and by `tokenizers`."""
    folder = Path(__file__).resolve().parents[2] / "shared" / "data" / "gpt2"
    if not folder.is_dir():
        pytest.skip("../shared/data/gpt2 is not present on this machine")
    return Tokenizer.from_gpt2(folder), hf_from_files(folder)


def test_real_gpt2_files(gpt2, shared_data):
    tok, hf_tok = gpt2
    assert tok.vocab_size == 50257 and tok.special_tokens == {"<|endoftext|>": 50256}
    assert tok.encode("Hello world") == [15496, 995]  # GPT-2's well-known ids
    assert tok.byte_id(ord("!")) == 0  # byte tokens are numbered in printable order
    text = (shared_data / "tinyshakespeare.txt").read_text(encoding="utf-8")[:300_000]
    assert tok.encode(text) == hf_tok.encode(text).ids
    assert tok.encode("<|endoftext|>", allowed_special="all") == [50256]


@settings(max_examples=200, deadline=None)
@given(NASTY_TEXT)
def test_real_gpt2_files_on_any_text(gpt2, text):
    tok, hf_tok = gpt2
    ids = tok.encode(text)
    assert ids == hf_tok.encode(text).ids
    assert tok.decode(ids) == text


def test_files_written_by_tokenizers_trainer(tmp_path):
    # the other direction: `tokenizers` trains and writes, minitf reads
    trainer = hf.trainers.BpeTrainer(
        vocab_size=700, show_progress=False, initial_alphabet=hf.pre_tokenizers.ByteLevel.alphabet()
    )
    hf_tok = hf.Tokenizer(hf.models.BPE())
    hf_tok.pre_tokenizer = hf.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    hf_tok.train_from_iterator([corpus(100_000)], trainer)
    hf_tok.model.save(str(tmp_path))
    tok = Tokenizer.from_gpt2(tmp_path)
    text = corpus(150_000) + "".join(PIECES)
    assert tok.encode(text) == hf_tok.encode(text).ids


def test_reproduces_reference_trainer(shared_data, tmp_path):
    # bpe-reference holds the merges and vocabulary of a trainer with minitf's objective
    # (GPT-2 split, "<|endoftext|>" as a boundary, ties to the greatest byte pair) on
    # corpus.en, vocab_size 500, in GPT-2's file format with the special token at id 0
    ref = shared_data / "bpe-reference"
    text = (ref / "corpus.en").read_text(encoding="utf-8")
    tok = Tokenizer.train(text, 500, pattern="gpt2", special_tokens=["<|endoftext|>"])
    byte_of = unicode_to_bytes()
    lines = (ref / "train-bpe-reference-merges.txt").read_text(encoding="utf-8").splitlines()
    expected = [tuple(bytes(byte_of[c] for c in t) for t in line.split(" ")) for line in lines]
    assert [(tok.token_bytes(a), tok.token_bytes(b)) for a, b in tok.merges] == expected

    vocab = json.loads((ref / "train-bpe-reference-vocab.json").read_text(encoding="utf-8"))
    assert len(vocab) == tok.vocab_size == 500
    # the reference's own ids differ (special first, bytes in printable order); loading
    # its files gives a tokenizer that encodes like ours, up to that renumbering
    shutil.copy(ref / "train-bpe-reference-vocab.json", tmp_path / "vocab.json")
    shutil.copy(ref / "train-bpe-reference-merges.txt", tmp_path / "merges.txt")
    theirs = Tokenizer.from_gpt2(tmp_path)
    assert theirs.special_tokens == {"<|endoftext|>": 0}
    ours = tok.encode(text, allowed_special="all")
    assert [theirs.token_bytes(i) for i in theirs.encode(text, allowed_special="all")] == [
        tok.token_bytes(i) for i in ours
    ]
