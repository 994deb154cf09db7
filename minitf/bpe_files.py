"""Tokenizer files: minitf's own text format, and GPT-2's `vocab.json` + `merges.txt`.

GPT-2 stores tokens as text, so it maps each of the 256 bytes to a printable character
(`bytes_to_unicode`): the space becomes "Ġ", the newline "Ċ". These functions only
read and write; they return the arguments of `minitf.bpe.Tokenizer(...)`, which checks
that the layout of ids makes sense.

Left out: the other files of a Hugging Face folder (tokenizer.json, added_tokens.json).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from minitf.bpe import Tokenizer

HEADER = "minitf-bpe 1"  # first line of every minitf tokenizer file, with its format version


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table from each byte to a printable character, e.g. 32 (space) -> "Ġ".

    Bytes that already print as themselves in Latin-1 keep their character; the other
    68 (controls, space, soft hyphen...) get the characters from U+0100 on, in order.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    table = {b: chr(b) for b in printable}
    shifted = (b for b in range(256) if b not in table)
    for n, b in enumerate(shifted):
        table[b] = chr(256 + n)
    return dict(sorted(table.items()))


def unicode_to_bytes() -> dict[str, int]:
    """The inverse of `bytes_to_unicode`: printable character -> byte."""
    return {char: b for b, char in bytes_to_unicode().items()}


BYTE_TO_CHAR = bytes_to_unicode()
CHAR_TO_BYTE = unicode_to_bytes()


def from_printable(text: str, where: str) -> bytes:
    """Bytes of a GPT-2 printable token; `where` names the file and line for errors."""
    try:
        return bytes(CHAR_TO_BYTE[char] for char in text)
    except KeyError as err:
        raise ValueError(
            f"{where}: {text!r} is not a byte-level BPE token (character {err.args[0]!r} "
            "is not in GPT-2's byte table); this does not look like a GPT-2 style file"
        ) from None


# --- minitf's own format ----------------------------------------------------------------


def write_minitf(tok: Tokenizer, path: str | Path) -> None:
    """Write one text file: header, pattern, byte ids, merges in rank order, special tokens."""
    lines = [HEADER, f"pattern {json.dumps(tok.pattern)}"]
    lines.append("bytes " + " ".join(str(tok.byte_id(b)) for b in range(256)))
    lines.append(f"merges {len(tok.merges)}")
    lines.append("# id_a id_b new_id  followed by the two tokens in GPT-2's printable form")
    for (a, b), new in zip(tok.merges, tok.merge_ids, strict=True):
        lines.append(f"{a} {b} {new}  {tok.token_str(a)} {tok.token_str(b)}")
    lines.append(f"special {len(tok.special_tokens)}")
    for text, i in tok.special_tokens.items():
        lines.append(f"{i} {json.dumps(text, ensure_ascii=False)}")
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_minitf(path: str | Path) -> dict[str, Any]:
    """Read a file written by `write_minitf`; a foreign or damaged file is a ValueError."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a minitf tokenizer file (it is not UTF-8 text)") from None
    if not lines or lines[0] != HEADER:
        raise ValueError(
            f"{path} is not a minitf tokenizer file: its first line should be {HEADER!r}; "
            "write one with Tokenizer.save, or load GPT-2 files with Tokenizer.from_gpt2"
        )
    rows = [(n, line) for n, line in enumerate(lines, 1) if not line.startswith("#")]
    at = 0  # index into rows of the line being read, for the error message

    def next_line(keyword: str | None = None) -> str:
        nonlocal at
        at += 1
        name, _, rest = rows[at][1].partition(" ")
        if keyword is None:
            return rows[at][1]
        if name != keyword:
            raise ValueError(f"expected a line starting with {keyword!r}")
        return rest

    try:
        pattern = json.loads(next_line("pattern"))
        byte_ids = [int(i) for i in next_line("bytes").split()]
        merges, merge_ids = [], []
        for _ in range(int(next_line("merges"))):
            a, b, new = (int(x) for x in next_line().split()[:3])
            merges.append((a, b))
            merge_ids.append(new)
        special = {}
        for _ in range(int(next_line("special"))):
            i, text = next_line().split(" ", 1)
            special[json.loads(text)] = int(i)
    except (ValueError, IndexError) as err:  # IndexError: the file ends early
        line = rows[at][0] if at < len(rows) else len(lines) + 1
        raise ValueError(f"{path} is damaged at line {line} ({err}); save it again") from None
    if not (pattern is None or isinstance(pattern, str)) or len(byte_ids) != 256:
        raise ValueError(f"{path} is damaged: bad 'pattern' or 'bytes' line")
    if not all(isinstance(text, str) for text in special):
        raise ValueError(f"{path} is damaged: special tokens must be JSON strings")
    return dict(
        merges=merges,
        pattern=pattern,
        special_tokens=special,
        byte_ids=byte_ids,
        merge_ids=merge_ids,
    )


# --- GPT-2 / Hugging Face format --------------------------------------------------------


def check_gpt2_special(special_tokens: list[str]) -> None:
    """Special tokens GPT-2's files can't hold, refused before any training: vocab.json
    names every token by its text, and a one-character special like "e" is already the
    name of a byte's token. (One that a merge happens to spell is found by `gpt2_vocab`.)"""
    for text in special_tokens:
        if text in CHAR_TO_BYTE:
            raise ValueError(
                f"special token {text!r} has the same text as the byte token {text!r}, and "
                "GPT-2's vocab.json names every token by its text; choose another, e.g. "
                f"'<|{text}|>'"
            )


def gpt2_vocab(tok: Tokenizer) -> dict[str, int]:
    """{printable token: id}, the content of vocab.json; a ValueError if two tokens share
    a name (a special token spelled like a merged one). Nothing is written."""
    vocab: dict[str, int] = {}
    for i in range(tok.vocab_size):
        name = tok.token_str(i)
        if vocab.setdefault(name, i) != i:
            raise ValueError(
                f"tokens {vocab[name]} and {i} are both {name!r}, but the GPT-2 format "
                "names each token by its string; rename the special token, or save with save()"
            )
    return vocab


def write_gpt2(tok: Tokenizer, folder: str | Path) -> None:
    """Write `vocab.json` ({printable token: id}) and `merges.txt` (one "a b" per line)."""
    folder = Path(folder)
    vocab = gpt2_vocab(tok)  # before writing anything, so a clash leaves no half a folder
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "vocab.json", "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False, indent=0)
    merges = [f"{tok.token_str(a)} {tok.token_str(b)}" for a, b in tok.merges]
    text = "\n".join(["#version: 0.2", *merges]) + "\n"
    (folder / "merges.txt").write_text(text, encoding="utf-8")


def read_gpt2(folder: str | Path) -> dict[str, Any]:
    """Read `vocab.json` + `merges.txt`, with or without merges.txt's `#version` line.

    Ids are the file's own: GPT-2 numbers its byte tokens in printable order ("!" is 0),
    so byte b gets `vocab[bytes_to_unicode()[b]]`. Tokens that are neither a byte nor
    made by a merge (GPT-2's "<|endoftext|>") become special tokens.
    """
    folder = Path(folder)
    vocab_path, merges_path = folder / "vocab.json", folder / "merges.txt"
    try:
        vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{vocab_path} is not a JSON vocabulary ({err})") from None
    if not isinstance(vocab, dict) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in vocab.values()
    ):
        raise ValueError(f"{vocab_path} should be one JSON object of token -> integer id")

    def lookup(name: str, where: str) -> int:
        if name not in vocab:
            raise ValueError(f"{where}: token {name!r} is missing from {vocab_path}")
        return vocab[name]

    byte_ids = [lookup(BYTE_TO_CHAR[b], f"byte {b}") for b in range(256)]
    merges, merge_ids = [], []
    for n, line in enumerate(_text_lines(merges_path), 1):
        if (n == 1 and line.startswith("#version")) or not line:
            continue
        where = f"{merges_path}, line {n}"
        parts = line.split(" ")
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"{where}: expected two tokens separated by one space: {line!r}")
        a, b = parts
        from_printable(a + b, where)  # reject files that are not byte-level
        merges.append((lookup(a, where), lookup(b, where)))
        merge_ids.append(lookup(a + b, where))
    if len(set(vocab.values())) != len(vocab):
        raise ValueError(f"{vocab_path} gives the same id to two different tokens")
    made = set(byte_ids) | set(merge_ids)
    special = {name: i for name, i in vocab.items() if i not in made}
    # a token no merge makes but two vocabulary tokens spell ("Ġthe" = "Ġt" + "he") is a
    # merge whose line is missing; a few may be real special tokens, thousands are not
    orphans = [name for name in special
               if any(name[:k] in vocab and name[k:] in vocab for k in range(1, len(name)))]
    if len(orphans) > ORPHAN_LIMIT:
        raise ValueError(
            f"{vocab_path} has {len(orphans):,} tokens that {merges_path} never makes (e.g. "
            f"{', '.join(repr(t) for t in orphans[:3])}), so {merges_path.name} looks empty or "
            f"cut short ({len(merges):,} merges); use the merges.txt that came with this "
            "vocab.json"
        )
    return dict(merges=merges, special_tokens=special, byte_ids=byte_ids, merge_ids=merge_ids)


ORPHAN_LIMIT = 16  # more such tokens than this, and merges.txt has lost lines


def _text_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 file; a ValueError naming the first line that is not UTF-8."""
    lines = path.read_bytes().split(b"\n")
    try:
        return [line.decode("utf-8").removesuffix("\r") for line in lines]
    except UnicodeDecodeError:
        n = next(n for n, line in enumerate(lines, 1) if not _is_utf8(line))
        raise ValueError(f"{path}, line {n}: not UTF-8 text; is the file damaged?") from None


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
