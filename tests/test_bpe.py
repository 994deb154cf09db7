"""Tests of minitf.bpe: the textbook example by hand, both trainers agreeing, round trips,
special tokens, files, and bad input. Comparisons with other libraries are in
test_bpe_conformance.py."""

from __future__ import annotations

import doctest
import json
import sysconfig
import unicodedata
import warnings
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minitf.bpe as bpe
from minitf.bpe import Tokenizer, bytes_to_unicode, train_simple, unicode_to_bytes
from minitf.bpe_train import heap_key
from minitf.cli import main

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


def corpus(n_chars: int) -> str:
    """Real text offline: tinyshakespeare where ../shared has it, else stdlib sources."""
    if SHAKESPEARE.is_file():
        return SHAKESPEARE.read_text(encoding="utf-8")[:n_chars]
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))
    text = ""
    for f in files:
        text += f.read_text(encoding="utf-8", errors="replace")
        if len(text) >= n_chars:
            break
    return text[:n_chars]


# valid Unicode only: lone surrogates (category Cs) cannot be encoded as UTF-8
UNICODE = st.text(st.characters(exclude_categories=("Cs",)), max_size=200)
NASTY = [
    "",
    "a",
    " ",
    "🐠",
    "👩‍👩‍👧‍👦 family",  # emoji joined by ZWJ
    "e\u0301te\u0301 n\u0303",  # combining marks
    "日本語のテキスト、中文",
    "  \t\n\n   \r\n x  ",
    "don't we'll THEY'RE I'M",
    "1234567 3.14159 x²",
    "<|endoftext|>",
    "\x00\x7f\u00ff\uffff\U0010ffff",
]


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    """A small GPT-4-pattern tokenizer with one special token."""
    return Tokenizer.train(corpus(30_000), 400, special_tokens=["<|endoftext|>"])


# --- the textbook example -----------------------------------------------------------------


def test_textbook_example_step_by_step():
    # "aaabdaaabac" (Wikipedia, minbpe). Pairs: aa 4, ab 2, bd da ba ac 1 -> merge (a, a).
    # Then "aa a b d aa a b a c": (aa, a) and (a, b) both occur twice; b"aa" > b"a", so
    # (aa, a) wins. Then (aaa, b) is the only pair seen twice. Then all four pairs occur
    # once and (b"d", b"aaab") is the greatest.
    text, a, b, c, d = "aaabdaaabac", 97, 98, 99, 100
    steps = [
        ((a, a), b"aa", [256, a, b, d, 256, a, b, a, c]),
        ((256, a), b"aaa", [257, b, d, 257, b, a, c]),
        ((257, b), b"aaab", [258, d, 258, a, c]),
        ((d, 258), b"daaab", [258, 259, a, c]),
    ]
    for k, (pair, token, ids) in enumerate(steps, 1):
        for train in (Tokenizer.train, train_simple):
            t = train(text, 256 + k, pattern=None)
            assert t.merges[-1] == pair
            assert t.token_bytes(255 + k) == token
            assert t.encode(text) == ids
            assert t.decode(ids) == text


def test_docstring_examples():
    result = doctest.testmod(bpe)
    assert result.attempted > 0 and result.failed == 0


def test_tie_goes_to_greatest_pair():
    # "abac": ab, ba, ac each once; (b"b", b"a") is the greatest
    assert Tokenizer.train("abac", 257, pattern=None).merges == [(98, 97)]


@given(st.binary(max_size=6), st.binary(max_size=6), st.binary(max_size=6), st.binary(max_size=6))
def test_heap_key_reverses_pair_order(a1, b1, a2, b2):
    # the fast trainer's min-heap must pop the greatest (bytes_a, bytes_b) first
    assert ((a1, b1) > (a2, b2)) == (heap_key(a1) + heap_key(b1) < heap_key(a2) + heap_key(b2))


# --- both trainers learn the same merges ---------------------------------------------------


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4", None, r"\w+|\s+|[^\w\s]+"])
@pytest.mark.parametrize(
    "text, specials",
    ids=["corpus", "corpus+specials", "repeats", "nasty+special"],
    argvalues=[
        (corpus(6_000), ()),
        (corpus(4_000) + "<|endoftext|>" + corpus(3_000) + "<|pad|>", ["<|endoftext|>", "<|pad|>"]),
        ("aaaa bbbb aaaaaaaa abababab " * 20, ()),
        ("".join(NASTY) * 5, ["<|endoftext|>"]),
    ],
)
def test_fast_trainer_matches_textbook(text, specials, pattern):
    n = 256 + len(specials) + 60
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny texts may run out of pairs: same for both
        fast = Tokenizer.train(text, n, pattern=pattern, special_tokens=specials)
        slow = train_simple(text, n, pattern=pattern, special_tokens=specials)
    assert fast.merges == slow.merges
    assert fast.special_tokens == slow.special_tokens


@settings(max_examples=60, deadline=None)
@given(UNICODE, st.integers(0, 40), st.sampled_from(["gpt2", "gpt4", None]))
def test_fast_trainer_matches_textbook_on_any_text(text, n_merges, pattern):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = Tokenizer.train(text * 3, 256 + n_merges, pattern=pattern)
        slow = train_simple(text * 3, 256 + n_merges, pattern=pattern)
    assert fast.merges == slow.merges


def test_training_stops_early_with_a_warning():
    with pytest.warns(UserWarning, match="only allows 2 merges"):
        t = Tokenizer.train("abc", 300, pattern=None, special_tokens=["<s>"])
    assert t.vocab_size == 256 + 2 + 1
    assert t.special_tokens == {"<s>": 258}


# --- encoding and decoding -----------------------------------------------------------------


@pytest.mark.parametrize("text", NASTY)
def test_round_trip_nasty(tok, text):
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert tok.decode_bytes(ids) == text.encode("utf-8")


def test_round_trip_whole_file(tok):
    text = corpus(200_000)
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert len(ids) < 0.7 * len(text.encode("utf-8"))  # 143 merges already compress


@settings(max_examples=100, deadline=None)
@given(UNICODE)
def test_round_trip_any_text(tok, text):
    assert tok.decode(tok.encode(text)) == text


@pytest.mark.parametrize("pattern", ["gpt2", None])
def test_long_chunks_use_the_heap_with_the_same_result(tok, pattern, monkeypatch):
    text = corpus(3_000) + " " * 100 + "x" * 50
    short_loop = Tokenizer(tok.merges, pattern=pattern)
    monkeypatch.setattr(bpe, "LONG_CHUNK", 10**9)
    expected = short_loop.encode(text)
    heap = Tokenizer(tok.merges, pattern=pattern)
    monkeypatch.setattr(bpe, "LONG_CHUNK", 0)
    assert heap.encode(text) == expected
    assert heap.decode(expected) == text


def test_encode_is_cached_and_deterministic(tok):
    text = corpus(5_000)
    assert tok.encode(text) == tok.encode(text) == Tokenizer(tok.merges).encode(text)


def test_invalid_utf8_decodes_to_replacement_character(tok):
    fish = "🐠".encode()  # four bytes; ids 0-255 are the bytes themselves
    assert tok.decode_bytes(list(fish[:2])) == fish[:2]
    assert tok.decode(list(fish[:2])) == "\ufffd"
    assert tok.decode([ord("a"), *fish[:3], ord("b")]) == "a\ufffdb"


def test_special_tokens_in_encoding(tok):
    eot = tok.special_tokens["<|endoftext|>"]
    assert eot == tok.vocab_size - 1
    text = "Hello<|endoftext|>world"
    assert eot not in tok.encode(text)  # "none": just text
    assert tok.encode(text, allowed_special="none") == tok.encode(text)
    ids = tok.encode(text, allowed_special="all")
    assert ids == [*tok.encode("Hello"), eot, *tok.encode("world")]
    assert tok.encode(text, allowed_special={"<|endoftext|>"}) == ids
    assert tok.decode(ids) == text
    assert tok.token_str(eot) == "<|endoftext|>"


def test_special_tokens_are_training_boundaries():
    # every pair occurs 50 times here (">h" 49), and ties go to the greatest bytes, so
    # without the boundary the first merges would be ("|", "e") and ("|", ">")
    text = "hello<|endoftext|>" * 50
    plain = Tokenizer.train(text, 256 + 4, pattern=None)
    assert plain.token_bytes(256) == b"|e"
    t = Tokenizer.train(text, 256 + 4 + 1, pattern=None, special_tokens=["<|endoftext|>"])
    # ties: (l, o) > (l, l) > (h, e) > (e, l); then (l, lo) > (h, e) > (e, l); then (h, e)
    assert [t.token_bytes(i) for i in range(256, 260)] == [b"lo", b"llo", b"he", b"hello"]
    assert t.encode(text, allowed_special="all") == [259, 260] * 50


def test_longest_special_token_wins():
    t = Tokenizer([], special_tokens=["<a>", "<a><b>"])
    assert t.encode("<a><b><a>", allowed_special="all") == [257, 256]


# --- the GPT-2 byte table and printable tokens ---------------------------------------------


def test_gpt2_byte_table():
    table = bytes_to_unicode()
    assert sorted(table) == list(range(256))
    assert len(set(table.values())) == 256
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[ord("a")] == "a"
    byte_decoder = unicode_to_bytes()
    # the classic check; its fourth character is U+0132 "Ĳ" (one letter, byte 0x90), which
    # copies of the example often turn into the two ASCII letters "IJ" by NFKC normalization
    fish = "ĠðŁ\u0132ł"
    assert unicodedata.normalize("NFKC", fish) == "ĠðŁIJł"
    assert bytes([byte_decoder[c] for c in fish]).decode("utf-8") == " 🐠"


def test_token_str_is_printable(tok):
    the = tok.encode(" the")
    assert len(the) == 1 and tok.token_str(the[0]) == "Ġthe"
    assert tok.token_str(ord("\n")) == "Ċ"
    assert tok.token_bytes(the[0]) == b" the"


# --- files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", ["gpt4", None, r"\p{L}+|\s+|."])
def test_save_load_round_trip(tmp_path, pattern):
    t = Tokenizer.train(corpus(10_000), 300, pattern=pattern, special_tokens=["<|a|>", "é"])
    t.save(tmp_path / "tok.bpe")
    text = (tmp_path / "tok.bpe").read_text(encoding="utf-8")
    assert text.startswith("minitf-bpe 1\n")
    assert f"{t.merges[0][0]} {t.merges[0][1]} 256" in text  # readable: one merge a line
    u = Tokenizer.load(tmp_path / "tok.bpe")
    assert (u.merges, u.pattern, u.special_tokens) == (t.merges, t.pattern, t.special_tokens)
    sample = corpus(3_000) + "<|a|>é"
    assert u.encode(sample, allowed_special="all") == t.encode(sample, allowed_special="all")


def test_save_gpt2_from_gpt2_round_trip(tmp_path, tok):
    tok.save_gpt2(tmp_path)
    vocab = json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8"))
    lines = (tmp_path / "merges.txt").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "#version: 0.2" and len(lines) == 1 + len(tok.merges)
    assert len(vocab) == tok.vocab_size and vocab["Ġ"] == 32
    u = Tokenizer.from_gpt2(tmp_path, pattern="gpt4")
    assert u.merges == tok.merges and u.special_tokens == tok.special_tokens
    text = corpus(5_000) + "<|endoftext|>"
    assert u.encode(text, allowed_special="all") == tok.encode(text, allowed_special="all")
    # merges.txt without the "#version" line reads the same
    (tmp_path / "merges.txt").write_text("\n".join(lines[1:]) + "\n", encoding="utf-8")
    assert Tokenizer.from_gpt2(tmp_path, pattern="gpt4").merges == tok.merges


def test_from_gpt2_keeps_the_files_ids(tmp_path, tok):
    # number the tokens backwards: encode must report the file's ids, not minitf's
    tok.save_gpt2(tmp_path)
    vocab = json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8"))
    last = tok.vocab_size - 1
    reversed_vocab = {name: last - i for name, i in vocab.items()}
    (tmp_path / "vocab.json").write_text(json.dumps(reversed_vocab), encoding="utf-8")
    u = Tokenizer.from_gpt2(tmp_path, pattern="gpt4")
    text = corpus(2_000) + " 🐠"
    assert u.encode(text) == [last - i for i in tok.encode(text)]
    assert u.decode(u.encode(text)) == text
    assert u.token_str(last - 32) == "Ġ" and u.byte_id(32) == last - 32
    u.save(tmp_path / "u.bpe")  # minitf's own format keeps the foreign layout
    assert Tokenizer.load(tmp_path / "u.bpe").encode(text) == u.encode(text)


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "vocab_size, specials, message",
    [
        (100, (), "at least 256"),
        (256, ["<s>"], "at least 257"),
        (300.0, (), "must be an int"),
        (True, (), "must be an int"),
        (300, "<s>", "list of non-empty strings"),
        (300, ["<s>", "<s>"], "duplicates"),
    ],
)
def test_bad_training_arguments(vocab_size, specials, message):
    for train in (Tokenizer.train, train_simple):
        with pytest.raises(ValueError, match=message):
            train("some text", vocab_size, special_tokens=specials)


def test_bad_patterns():
    with pytest.raises(ValueError, match="not a valid regular expression"):
        Tokenizer.train("text", 260, pattern="(")
    with pytest.raises(ValueError, match="does not match every character"):
        Tokenizer.train("two words", 260, pattern=r"\w+")


def test_lone_surrogate_is_an_error(tok):
    for call in (lambda: tok.encode("ok \ud800 no"), lambda: Tokenizer.train("a\udfffb", 260)):
        with pytest.raises(ValueError, match="lone surrogate U\\+D"):
            call()


def test_decode_out_of_range(tok):
    for ids in ([tok.vocab_size], [-1], [5, 10**9]):
        with pytest.raises(ValueError, match="out of range"):
            tok.decode(ids)
    with pytest.raises(ValueError, match="out of range"):
        tok.token_str(tok.vocab_size)


def test_bad_allowed_special(tok):
    with pytest.raises(ValueError, match="unknown special tokens"):
        tok.encode("x", allowed_special={"<nope>"})
    with pytest.raises(ValueError, match="allowed_special must be"):
        tok.encode("x", allowed_special="some")


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"vocab": {}}', "not a minitf tokenizer file"),
        ("", "not a minitf tokenizer file"),
        ('minitf-bpe 1\npattern "gpt4"\n', "damaged at line 3"),
        ('minitf-bpe 1\npattern "gpt4"\nbytes 1 2\nmerges 0\nspecial 0\n', "damaged"),
        ("minitf-bpe 1\npattern gpt4\n", "damaged at line 2"),
    ],
)
def test_load_rejects_foreign_or_damaged_files(tmp_path, content, message):
    (tmp_path / "x").write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        Tokenizer.load(tmp_path / "x")


def test_load_rejects_truncated_and_binary_files(tmp_path, tok):
    tok.save(tmp_path / "t.bpe")
    text = (tmp_path / "t.bpe").read_text(encoding="utf-8")
    (tmp_path / "t.bpe").write_text(text[: len(text) // 2], encoding="utf-8")
    with pytest.raises(ValueError, match="damaged"):
        Tokenizer.load(tmp_path / "t.bpe")
    (tmp_path / "b").write_bytes(b"\x80\x81\xff")
    with pytest.raises(ValueError, match="not UTF-8"):
        Tokenizer.load(tmp_path / "b")


def test_from_gpt2_rejects_foreign_files(tmp_path, tok):
    tok.save_gpt2(tmp_path)
    vocab_text = (tmp_path / "vocab.json").read_text(encoding="utf-8")
    merges_text = (tmp_path / "merges.txt").read_text(encoding="utf-8")
    cases = [
        ("vocab.json", "not json", "not a JSON vocabulary"),
        ("vocab.json", '["a", "b"]', "one JSON object"),
        ("vocab.json", json.dumps({"a": 0}), "missing"),
        ("merges.txt", merges_text + "▁the ▁cat\n", "not a byte-level BPE token"),
        ("merges.txt", merges_text + "a b c\n", "two tokens separated by one space"),
        ("merges.txt", merges_text + "Ġzzq zzqx\n", "missing from"),
    ]
    for name, content, message in cases:
        (tmp_path / name).write_text(content, encoding="utf-8")
        with pytest.raises(ValueError, match=message):
            Tokenizer.from_gpt2(tmp_path)
        (tmp_path / "vocab.json").write_text(vocab_text, encoding="utf-8")
        (tmp_path / "merges.txt").write_text(merges_text, encoding="utf-8")


def test_constructor_rejects_inconsistent_layouts():
    with pytest.raises(ValueError, match="no earlier merge made"):
        Tokenizer([(97, 300)])
    with pytest.raises(ValueError, match="no gaps"):
        Tokenizer([], special_tokens={"<s>": 300})


# --- the command line ----------------------------------------------------------------------


def test_cli_train_and_encode(tmp_path, capsys):
    (tmp_path / "in.txt").write_text(corpus(20_000), encoding="utf-8")
    out = tmp_path / "tok"
    code = main(
        [
            "bpe",
            "train",
            str(tmp_path / "in.txt"),
            "--vocab-size",
            "300",
            "--out",
            str(out),
            "--pattern",
            "gpt2",
            "--special",
            "<|endoftext|>",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "bytes/token" in printed and "longest tokens" in printed
    assert {p.name for p in out.iterdir()} >= {"tokenizer.bpe", "vocab.json", "merges.txt"}
    t = Tokenizer.load(out / "tokenizer.bpe")
    assert t.vocab_size == 300 and t.pattern == "gpt2"

    assert main(["bpe", "encode", str(out), " the cat"]) == 0
    table = capsys.readouterr().out
    for i in t.encode(" the cat"):
        assert f"{i}" in table and t.token_str(i) in table


def test_cli_errors_are_one_line(tmp_path, capsys):
    code = main(
        [
            "bpe",
            "train",
            str(tmp_path / "missing.txt"),
            "--vocab-size",
            "300",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("minitf: error:") and err.count("\n") == 1
    (tmp_path / "in.txt").write_text("hello", encoding="utf-8")
    assert (
        main(
            [
                "bpe",
                "train",
                str(tmp_path / "in.txt"),
                "--vocab-size",
                "10",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "at least 256" in capsys.readouterr().err
    assert main(["bpe", "encode", str(tmp_path / "nowhere"), "x"]) == 2
