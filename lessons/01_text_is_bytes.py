# %% [markdown]
# # Lesson 1: Text is bytes
#
# **Goal:** see that a language model never reads letters: it reads UTF-8 bytes, shown
# through GPT-2's table of printable characters, grouped into tokens.
#
# Run this file as a script (`python 01_text_is_bytes.py`, add `--quick` for the short
# version) or open it as a notebook. Exercises are the functions with a `TODO`; check them
# with `minitf check 1`. Words in *italics* are in the [glossary](../docs/glossary.md).

# %%
import unicodedata

import matplotlib.pyplot as plt

from minitf import bpe, course
from minitf.course.check import check_here

course.setup_matplotlib()
QUICK = course.quick_mode()

# %% [markdown]
# ## Characters are code points
#
# Unicode gives every character a number, its *code point*: `"A"` is 65, `"é"` is 233,
# the tropical fish `"🐠"` is 128032. A Python `str` is a sequence of code points.
# There are over a million possible code points, far too many for a vocabulary.

# %%
for char in ["A", "é", "λ", "中", "🐠"]:
    print(f"{char!r:6} U+{ord(char):05X} = {ord(char):>6}  {unicodedata.name(char)}")

# %% [markdown]
# ## UTF-8 turns code points into 1 to 4 bytes
#
# Files and networks carry bytes, so text is *encoded*. UTF-8, the web's encoding, writes
# ASCII (code points below 128) as one byte and everything else as 2, 3 or 4 bytes:
#
# | code points         | bytes | bit pattern                             |
# |---------------------|-------|-----------------------------------------|
# | U+0000 .. U+007F    | 1     | `0xxxxxxx`                              |
# | U+0080 .. U+07FF    | 2     | `110xxxxx 10xxxxxx`                     |
# | U+0800 .. U+FFFF    | 3     | `1110xxxx 10xxxxxx 10xxxxxx`            |
# | U+10000 .. U+10FFFF | 4     | `11110xxx 10xxxxxx 10xxxxxx 10xxxxxx`   |
#
# The `x` bits are the code point's bits, most significant first. A byte starting with
# `10` is always a continuation, so a reader can find where characters start.

# %%
TEXT = "héllo 🐠"
encoded = TEXT.encode("utf-8")
print(f"{len(TEXT)} characters -> {len(encoded)} bytes: {list(encoded)}")
for char in TEXT:
    print(f"{char!r:6} -> {' '.join(f'{b:08b}' for b in char.encode('utf-8'))}")

# %% [markdown]
# ### Exercise 1: `utf8_encode`
#
# Write UTF-8 by hand: given a code point (an int), return its bytes following the table
# above. Use bit operations (`>>`, `&`, `|`); don't call `.encode`.

# %%
def utf8_encode(code_point: int) -> bytes:
    """The UTF-8 bytes of one code point, e.g. 233 ("é") -> b"\\xc3\\xa9"."""
    ### BEGIN SOLUTION
    if code_point < 0x80:
        return bytes([code_point])
    if code_point < 0x800:
        return bytes([0b11000000 | code_point >> 6, 0b10000000 | code_point & 0x3F])
    if code_point < 0x10000:
        return bytes([
            0b11100000 | code_point >> 12,
            0b10000000 | (code_point >> 6) & 0x3F,
            0b10000000 | code_point & 0x3F,
        ])
    return bytes([
        0b11110000 | code_point >> 18,
        0b10000000 | (code_point >> 12) & 0x3F,
        0b10000000 | (code_point >> 6) & 0x3F,
        0b10000000 | code_point & 0x3F,
    ])
    ### END SOLUTION


# %%
check_here(1, globals(), "utf8_encode")

# %% [markdown]
# ## Why models read bytes
#
# A vocabulary of all code points would be huge and still miss new emoji. A vocabulary
# of the 256 byte values is tiny and covers *every* text, in every language, with no
# "unknown" token. The price: non-English text takes more steps. This figure counts the
# bytes per character of the same greeting in a few scripts.

# %%
GREETINGS = {
    "English": "hello world",
    "French": "bonjour à tous",
    "Greek": "γεια σου κόσμε",
    "Hindi": "नमस्ते दुनिया",
    "Chinese": "你好世界",
    "emoji": "👋🌍",
}
ratios = {name: len(s.encode("utf-8")) / len(s) for name, s in GREETINGS.items()}
fig, ax = plt.subplots(figsize=course.FIGSIZE)
ax.bar(list(ratios), list(ratios.values()), color="tab:blue")
ax.set_ylabel("UTF-8 bytes per character")
ax.set_xlabel("script")
ax.set_title("UTF-8 is cheap for English: other scripts cost 2 to 4 bytes a character")
course.save_figure(fig, "01_bytes_per_char.png")

# %% [markdown]
# ## GPT-2's printable byte table
#
# A byte-level tokenizer's tokens are byte strings, many of which aren't valid text on
# their own (half an emoji). To store them in a text file (`vocab.json`, `merges.txt`),
# GPT-2 gives each byte a printable character: bytes that print as themselves in Latin-1
# keep their character (`a` stays `a`); the other 68 (space, newline, control bytes, ...)
# get the characters from U+0100 (`Ā`) on, in order. So a space is `Ġ` and a newline `Ċ`.
#
# ### Exercise 2: `printable_bytes`
#
# Build that table: a dict from each byte (0..255) to its printable character. The bytes
# that keep their own character are `!`..`~`, `¡`..`¬` and `®`..`ÿ`; the rest, in
# increasing order, get `chr(256)`, `chr(257)`, ...

# %%
def printable_bytes() -> dict[int, str]:
    """GPT-2's byte -> printable character table, e.g. 32 (space) -> "Ġ"."""
    ### BEGIN SOLUTION
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in keep}
    n = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + n)
            n += 1
    return table
    ### END SOLUTION


# %% [markdown]
# ### Exercise 3: `token_to_text`
#
# Invert it: turn a token written with printable characters back into text. Map each
# character to its byte (use `minitf.bpe.unicode_to_bytes()`, or invert your table), then
# decode the bytes as UTF-8 (`errors="replace"`, since a token can be part of a character).

# %%
def token_to_text(token: str) -> str:
    """GPT-2's printable form -> text, e.g. "Ġhello" -> " hello"."""
    ### BEGIN SOLUTION
    to_byte = bpe.unicode_to_bytes()
    return bytes(to_byte[c] for c in token).decode("utf-8", errors="replace")
    ### END SOLUTION


# %%
check_here(1, globals())

# %% [markdown]
# The reference table lives in minitf; here is the fish, byte by byte. GPT-2's files
# write it `ĠðŁĲł`: five characters, one per byte. The fourth is `Ĳ` (U+0132, the "IJ"
# ligature), one character that looks like two.

# %%
table = bpe.bytes_to_unicode()
fish = " 🐠".encode()
printable = "".join(table[b] for b in fish)
print(list(fish), "->", printable)
back = bytes(bpe.unicode_to_bytes()[c] for c in printable).decode("utf-8")
print(printable, "->", repr(back))

# %% [markdown]
# ## How GPT-2 splits text
#
# GPT-2's real tokenizer merged frequent byte pairs into 50,000 larger tokens (lesson 2
# shows how). With its two files on disk we can see what the model actually receives.
# Note how a leading space changes everything, and how numbers are cut into arbitrary
# pieces.
#
# **Getting GPT-2's files.** They are public: download
# https://huggingface.co/openai-community/gpt2/resolve/main/vocab.json and
# https://huggingface.co/openai-community/gpt2/resolve/main/merges.txt into one folder
# and set `MINITF_GPT2_DIR` to it. If you have used GPT-2 with the `transformers`
# library, they are already in its cache (a folder under
# `~/.cache/huggingface/hub/models--openai-community--gpt2/snapshots/`), which minitf
# finds by itself. Without them this cell prints one line and the rest of the lesson
# runs as usual: the table below then has no GPT-2 row to check.

# %%
SAMPLES = [" 🐠", " strawberry", "strawberry", " 1234+5678="]
gpt2_folder = course.gpt2_dir()
splits = {}
if gpt2_folder is None:
    print("GPT-2's vocab.json/merges.txt not found (see above where to get them): "
          "skipping this part")
else:
    gpt2 = bpe.Tokenizer.from_gpt2(gpt2_folder)
    for text in SAMPLES:
        ids = gpt2.encode(text)
        splits[text] = ids
        pieces = [gpt2.token_str(i) for i in ids]
        print(f"{text!r:16} -> {len(ids)} tokens {ids} {pieces}")

# %% [markdown]
# ## What you should see
#
# | quantity                                   | value |
# |--------------------------------------------|-------|
# | `"héllo 🐠"`: characters / UTF-8 bytes      | 7 / 11 |
# | bytes per character, English / Chinese     | 1.0 / 3.0 |
# | `" 🐠"` printable                          | `ĠðŁĲł` (5 characters) |
# | GPT-2 tokens for `" 🐠"`, `" strawberry"`, `"strawberry"`, `" 1234+5678="` | 3, 1, 3, 6 |
#
# One space makes `strawberry` one token or three; the fish is three tokens that are not
# characters at all. The cell below checks these numbers.

# %%
assert (len(TEXT), len(TEXT.encode("utf-8"))) == (7, 11)
assert abs(ratios["English"] - 1.0) < 1e-9 and abs(ratios["Chinese"] - 3.0) < 1e-9
assert printable == "ĠðŁ\u0132ł" and back == " 🐠"
if splits:
    assert [len(splits[t]) for t in SAMPLES] == [3, 1, 3, 6], splits
print("all numbers as expected")

# %% [markdown]
# ## Where this lives in minitf/
#
# - `minitf/bpe_files.py`: `bytes_to_unicode` / `unicode_to_bytes`, GPT-2's table, and the
#   reading and writing of `vocab.json` + `merges.txt`.
# - `minitf/bpe.py`: `Tokenizer.from_gpt2`, `Tokenizer.token_str` (the printable view),
#   `Tokenizer.decode` (invalid UTF-8 becomes `�`, like GPT-2).
#
# Next: lesson 2 learns the merges themselves.
