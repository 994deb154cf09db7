# %% [markdown]
# # Lesson 13: Tokenization has consequences
#
# **Goal:** measure why a model that reads BPE tokens can't count the letters of a word it
# has not memorised ("how many r's in strawberry?"), and fix it by letting the model spell
# the word before it answers.
#
# A language model never sees letters: it sees token ids. With a character-level
# tokenizer each letter is its own token, so "how many r's" is a question about the
# input. With BPE (lesson 2) `strawberry` becomes a few multi-letter tokens, and which
# letters hide inside each of them the model can only know if training taught it. We
# train three small models on the same questions and compare them on *held-out* words,
# words no model saw in training. See *subword token* and *spell-first answer* in the
# [glossary](../docs/glossary.md).

# %%
import re
import sysconfig
import time
from math import nan
from pathlib import Path

import jax
import matplotlib.pyplot as plt
import numpy as np

from minitf import course
from minitf.bpe import Tokenizer
from minitf.course.check import check_here
from minitf.model import Config
from minitf.tasks import Task
from minitf.train import train

course.setup_matplotlib()
QUICK = course.quick_mode()
ALPHABET = "abcdefghijklmnopqrstuvwxyz"
MAX_LETTERS = 10  # words have 3..10 letters
N_HELD_OUT = 1000  # words kept out of training (and out of the tokenizer's training text)
VOCAB_SIZE = 1024  # BPE: 256 bytes + 768 merges
STEPS = 100 if QUICK else 2000  # training steps for each of the three models
BATCH_SIZE = 32  # small batches: each step stays fast on a CPU
N_EVAL = 200 if QUICK else 1000  # questions asked to measure accuracy, per split
start_wall, start_cpu = time.perf_counter(), time.process_time()

# %% [markdown]
# ## Words, and how many times a letter occurs in them
#
# We need English-like words that every Python installation has offline: the lowercase
# words of 3 to 10 letters in the standard library's source files (`def`, `return`,
# `buffer`, `timezone`, words from the docstrings...). A seeded shuffle keeps
# `N_HELD_OUT` of them for testing; the models and the tokenizer only ever see the rest.
# The answer to every question is `word.count(letter)`.

# %%
def stdlib_words() -> list[str]:
    """The distinct lowercase words of 3..MAX_LETTERS letters in the stdlib's top-level .py
    files, sorted: a word list that every Python installation has offline."""
    root = Path(sysconfig.get_paths()["stdlib"])
    word = re.compile(rf"\b[a-z]{{3,{MAX_LETTERS}}}\b")
    found: set[str] = set()
    for path in sorted(root.glob("*.py")):
        found.update(word.findall(path.read_text(encoding="utf-8", errors="replace")))
    return sorted(found)


words = stdlib_words()
order = np.random.default_rng(0).permutation(len(words))  # seeded: the same split every run
held_out = {words[i] for i in order[:N_HELD_OUT]}
train_words = [w for w in words if w not in held_out]
print(f"{len(words)} words: {len(train_words)} for training, {len(held_out)} held out")
print("a few held-out words:", sorted(held_out)[::100])

# %% [markdown]
# ## A BPE tokenizer trained on the training words
#
# `Tokenizer.train` from lesson 2, on the training words one per line, with 768 merges.
# Frequent pieces (`re`, `ing`, `tion`, `get`) become single tokens, so a word becomes a
# few multi-letter tokens. `strawberry` is not in the standard library, so it is a
# held-out word too.

# %%
def token_pieces(tokenizer: Tokenizer, word: str) -> list[str]:
    """The text of each token `word` is encoded into, e.g. ['st', 'raw', ...]."""
    return [tokenizer.decode([token_id]) for token_id in tokenizer.encode(word)]


tokenizer = Tokenizer.train("\n".join(train_words), VOCAB_SIZE)
for word in ["strawberry", "counting", "letters", "tokenizer"]:
    print(f"{word:>12} -> {token_pieces(tokenizer, word)}")
tokens_per_word = np.array([len(tokenizer.encode(w)) for w in words])  # (N,)
letters_per_word = np.array([len(w) for w in words])  # (N,)
print(f"letters per word {letters_per_word.mean():.2f}, BPE tokens per word "
      f"{tokens_per_word.mean():.2f}, letters per token "
      f"{letters_per_word.sum() / tokens_per_word.sum():.2f}")

# %% [markdown]
# A model that reads BPE tokens sees `strawberry` as a handful of ids. Nothing in the id
# of `err` says "two r's": that fact can only live in the embedding the model learns for
# it, and only if the training questions make it worth learning.
#
# ### Exercise 1: `letter_counts`
# What would a model need to know to count letters from token ids? For every token, how
# many of each letter it holds. Return that table for a tokenizer: an int array
# `(vocab_size, 26)`, entry `[i, j]` the number of times the `j`-th letter of `ALPHABET`
# occurs in token `i`'s bytes (`tokenizer.token_bytes(i)`; a letter is its ASCII byte).

# %%
def letter_counts(tokenizer: Tokenizer) -> np.ndarray:
    """How many of each letter a-z every token holds. -> [V, 26] int"""
    ### BEGIN SOLUTION
    table = np.zeros((tokenizer.vocab_size, len(ALPHABET)), dtype=int)
    for i in range(tokenizer.vocab_size):
        for byte in tokenizer.token_bytes(i):
            if ord("a") <= byte <= ord("z"):
                table[i, byte - ord("a")] += 1
    return table
    ### END SOLUTION


# %%
check_here(13, globals(), "letter_counts")

# %% [markdown]
# With the table, counting is a sum over the word's tokens, exactly right for every word.
# Without it, a token is just an id. This is what a model reading BPE has to learn, one
# number at a time, from nothing but questions about whole words:

# %%
table = letter_counts(tokenizer)  # (V, 26)
summed_right = all(table[tokenizer.encode(w)].sum(axis=0).tolist()
                   == [w.count(c) for c in ALPHABET] for w in words)  # fmt: skip
multi = [i for i in range(256, tokenizer.vocab_size) if table[i].sum() > 1]
facts = int((table[multi] > 0).sum())
print(f"counts summed over the tokens' table rows right for every letter of every word: "
      f"{summed_right}")
print(f"{len(multi)} tokens hold several letters; their table has {facts} non-zero entries "
      f"a model would have to learn, e.g. {tokenizer.decode([multi[-1]])!r}: "
      f"{ {ALPHABET[j]: int(n) for j, n in enumerate(table[multi[-1]]) if n} }")

# %% [markdown]
# ## Three ways to ask the same question
#
# A question is the word's tokens (left-padded with `.` to a fixed number of tokens), a
# `:` and the letter asked about; the answer follows right after the letter. Half the
# time the letter is taken from the word, half the time it is a random letter (often
# absent: the answer is 0). The loss counts only the answer tokens, as in every minitf
# task. (An `=` after the letter looks harmless, but then the position that answers is
# not the one that holds the letter. In a trial with batches of 64 and an `=`, the
# character model still counted only 78% right after 1500 steps; without it, 96% after
# 400.)
#
# | model | a question | its answer |
# |---|---|---|
# | (a) characters | `s\|t\|r\|a\|w\|b\|e\|r\|r\|y\|:\|r` | `3` |
# | (b) BPE | `st\|raw\|b\|err\|y\|:\|r` | `3` |
# | (c) BPE, spell first | `st\|raw\|b\|err\|y\|:\|r` | `s\|t\|r\|a\|w\|b\|e\|r\|r\|y\|:\|r\|3` |
#
# (`|` separates tokens; the BPE split is the one printed above.)
#
# All ids are byte-level ids: a letter or a digit is its byte (ids below 256). So the
# character-level tokenizer of model (a) is simply a BPE tokenizer with no merges,
# `Tokenizer([])`: its 256 ids are the bytes.
#
# Model (c) first writes the word letter by letter and then asks itself question (a)
# about what it wrote: its answer ends in exactly the prompt model (a) gets, followed by
# the count.
#
# ### Exercise 2: `spell_first_answer`
# The answer of model (c) as text: the word's letters, then `.` up to `width` characters,
# then `:`, the letter, and the count as one digit.
# `spell_first_answer("error", "r", 10) == "error.....:r3"`.

# %%
def spell_first_answer(word: str, letter: str, width: int) -> str:
    """`word` padded with '.' to `width` characters, ':', `letter`, and its count."""
    ### BEGIN SOLUTION
    return word + "." * (width - len(word)) + ":" + letter + str(word.count(letter))
    ### END SOLUTION


# %%
check_here(13, globals(), "spell_first_answer")

# %% [markdown]
# `counting_task` turns a tokenizer and an answer format into a `minitf.tasks.Task`, so
# that `minitf.train.train` trains on it as on any toy task. Your `spell_first_answer`
# writes model (c)'s answers; a question is a test question exactly when its
# word is held out.

# %%
PAD, COLON = ord("."), ord(":")  # byte ids


def counting_task(words: list[str], held_out: set[str], tokenizer: Tokenizer, *,
                  spell_first: bool) -> Task:
    """Letter counting on `words`, each written in the tokens of `tokenizer`.

    Prompt: the word's ids left-padded with '.', then ':' and the letter. Answer: the
    count, or with `spell_first` the spelling padded to MAX_LETTERS, ':', the letter and
    the count.
    """
    encoded = [tokenizer.encode(w) for w in words]
    n_tokens = max(map(len, encoded))
    word_ids = np.array([[PAD] * (n_tokens - len(e)) + e for e in encoded])  # (N, n_tokens)
    row_of = {row.tobytes(): i for i, row in enumerate(word_ids)}
    is_held_out = np.array([w in held_out for w in words])  # (N,)
    word_lengths = np.array([len(w) for w in words])  # (N,)

    def answer(word: str, letter: str) -> str:
        if spell_first:
            return spell_first_answer(word, letter, MAX_LETTERS)
        return str(word.count(letter))

    def draw(rng: np.random.Generator, n: int) -> np.ndarray:
        which = rng.integers(0, len(words), n)  # (n,) word indices
        at = (rng.random(n) * word_lengths[which]).astype(int)  # (n,) a position in the word
        in_word = np.array([ord(words[i][j]) for i, j in zip(which, at, strict=True)])  # (n,)
        random_letter = ord("a") + rng.integers(0, 26, n)  # (n,)
        letter = np.where(rng.random(n) < 0.5, in_word, random_letter)  # (n,)
        colon = np.full((n, 1), COLON)  # (n, 1)
        return np.concatenate([word_ids[which], colon, letter[:, None]], axis=1)  # (n, P)

    def word_index(prompts: np.ndarray) -> np.ndarray:
        rows = prompts[:, :n_tokens].astype(word_ids.dtype)  # (n, n_tokens)
        return np.array([row_of[row.tobytes()] for row in rows])  # (n,)

    def solve(prompts: np.ndarray) -> np.ndarray:
        asked = zip(word_index(prompts), prompts[:, -1], strict=True)
        return np.array([list(answer(words[i], chr(c)).encode()) for i, c in asked])  # (n, A)

    return Task(
        name="count_letters_in_words",
        spec={"spell_first": spell_first, "n_tokens": n_tokens},
        tokenizer=tokenizer,
        prompt_len=n_tokens + 2,
        answer_len=MAX_LETTERS + 3 if spell_first else 1,
        draw=draw,
        solve=solve,
        is_test=lambda prompts: is_held_out[word_index(prompts)],
    )


letters = Tokenizer([])  # no merges: one token per byte, so one per letter
tasks = {
    "(a) characters": counting_task(words, held_out, letters, spell_first=False),
    "(b) BPE": counting_task(words, held_out, tokenizer, spell_first=False),
    "(c) BPE, spell first": counting_task(words, held_out, tokenizer, spell_first=True),
}
for name, task in tasks.items():
    prompt, answer = (ids[0] for ids in task.problems(np.random.default_rng(3), 1, "train"))
    shown = "|".join(tokenizer.decode([i]) for i in prompt)
    print(f"{name:>22}: {shown}  ->  {'|'.join(tokenizer.decode([i]) for i in answer)}")

# %% [markdown]
# ## Training the three models
#
# Same model size, same steps, same seed, same questions: only the way the word is
# written and the answer format differ. (Quick mode trains for 100 steps, too few for any
# model to learn to count: its bars sit near the blind guess below.)

# %%
def accuracies(task: Task, params: dict, config: Config, split: str) -> dict[str, float]:
    """Greedy answers to N_EVAL questions on one side of the split: how often the count
    (the last answer token) is right, how often everything before it (the spelling, for
    model (c)) is, and how often the count is right when the spelling is and isn't (nan
    when there is no such question)."""
    prompts, answers = task.problems(np.random.default_rng(1), N_EVAL, split)  # (n, P), (n, A)
    predicted = task.predict(params, config, prompts)  # (n, A)
    count_right = predicted[:, -1] == answers[:, -1]  # (n,)
    spelled = np.all(predicted[:, :-1] == answers[:, :-1], axis=1)  # (n,) True if no spelling
    return {"count": float(count_right.mean()), "spelled": float(spelled.mean()),
            "count_if_spelled": float(count_right[spelled].mean()) if spelled.any() else nan,
            "count_if_misspelled": float(count_right[~spelled].mean()) if (~spelled).any()
            else nan}


models, results = {}, {}
for name, task in tasks.items():
    config = Config(vocab_size=task.tokenizer.vocab_size, max_len=task.seq_len, n_layer=2,
                    n_head=4, d_model=64, d_mlp=256)
    run = train(config, task, steps=STEPS, batch_size=BATCH_SIZE, lr=3e-3, seed=0,
                progress=False)
    params = jax.device_get(run.params)
    models[name] = (params, config, task)
    results[name] = {split: accuracies(task, params, config, split)
                     for split in ("train", "test")}
    print(f"{name:>22}: final loss {run.history['loss'][-1]:.3f}, count right on training "
          f"words {results[name]['train']['count']:.3f}, on held-out words "
          f"{results[name]['test']['count']:.3f}  ({run.seconds:.0f} s)")

# %% [markdown]
# A model that cannot see any letter can still guess well from the letter alone (a
# random letter is usually absent, a letter from the word usually occurs once). That
# *blind* baseline is the best answer per asked letter on the training questions:

# %%
prompts, answers = tasks["(a) characters"].problems(np.random.default_rng(2), 10_000, "train")
best_guess = {letter: np.bincount(answers[prompts[:, -1] == letter, -1]).argmax()
              for letter in np.unique(prompts[:, -1])}
prompts, answers = tasks["(a) characters"].problems(np.random.default_rng(1), N_EVAL, "test")
blind = float(np.mean([best_guess[p] == a for p, a in zip(prompts[:, -1], answers[:, -1],
                                                          strict=True)]))
print(f"blind baseline (knows only the asked letter): {blind:.3f}")

# %%
names = list(tasks)
fig, (ax_len, ax_acc) = plt.subplots(1, 2, figsize=course.FIGSIZE,
                                     gridspec_kw={"width_ratios": [1, 2]})
bins = np.arange(0.5, MAX_LETTERS + 1)
ax_len.hist(letters_per_word, bins=bins, alpha=0.6, label="letters")
ax_len.hist(tokens_per_word, bins=bins, alpha=0.6, label="BPE tokens")
ax_len.set_xlabel("letters or tokens in a word")
ax_len.set_ylabel("words")
ax_len.set_title("what the model sees")
ax_len.legend()
x = np.arange(len(names))
for offset, split, label in [(-0.2, "train", "training words"), (0.2, "test", "held-out words")]:
    heights = [results[n][split]["count"] for n in names]
    bars = ax_acc.bar(x + offset, heights, width=0.4, label=label)
    ax_acc.bar_label(bars, fmt="%.2f", fontsize=8)
ax_acc.axhline(blind, color="gray", linestyle="--", label="blind guess")
ax_acc.set_xticks(x, [n.replace(", ", ",\n") for n in names])
ax_acc.set_ylim(0, 1.1)
ax_acc.set_ylabel("count right (fraction)")
ax_acc.set_title("how many times does the letter occur?")
ax_acc.legend(loc="lower right", fontsize=8)
fig.suptitle("Letters hidden in BPE tokens can't be counted, unless the model spells first")
course.save_figure(fig, "13_letter_counting.png")

# %% [markdown]
# ## How many r's in strawberry?
#
# `strawberry`, `banana` and `committee` are not in the standard library: new words for
# every model. Ask each model, and look at what the spell-first model wrote before its
# count: it counts in its own spelling, so its count is only as good as that spelling
# (and counts of 3 are rare in training, so they are the hardest).

# %%
def ask(name: str, word: str, letter: str) -> str:
    """One question to one of the three models; its greedy answer as text."""
    params, config, task = models[name]
    ids = task.tokenizer.encode(word)
    n_pad = task.prompt_len - 2 - len(ids)
    prompt = np.array([[PAD] * n_pad + ids + [COLON, ord(letter)]])  # (1, P)
    return tokenizer.decode(task.predict(params, config, prompt)[0])


for word, letter in [("strawberry", "r"), ("banana", "a"), ("committee", "t")]:
    replies = {name: ask(name, word, letter) for name in names}
    print(f"{letter!r} in {word!r} (truth {word.count(letter)}): {replies}")

spell = results["(c) BPE, spell first"]["test"]
print(f"spell-first model on held-out words: spelled right {spell['spelled']:.3f}; count "
      f"right {spell['count_if_spelled']:.3f} when spelled right, "
      f"{spell['count_if_misspelled']:.3f} when misspelled")
wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
print(f"lesson so far: {wall:.0f} s wall, {cpu:.0f} s CPU")

# %% [markdown]
# ## What you should see
#
# Fraction of questions whose count is right (full mode, 2000 steps of 32 questions;
# quick mode's 100 steps leave every model near the blind guess):
#
# | model | training words | held-out words |
# |---|---|---|
# | blind guess (knows only the asked letter) | | about 0.61 |
# | (a) characters | about 1.00 | about 1.00 |
# | (b) BPE | about 0.66 | about 0.70 |
# | (c) BPE, spell first | about 0.92 | about 0.89 |
#
# and for model (c) on held-out words: the spelling is right for about 0.77 of them; the
# count is right for about 0.93 of the words it spelled right, and about 0.73 of the
# misspelled ones.
#
# A word is about 2.8 BPE tokens for 6.7 letters. Every one of the 768 merged tokens
# holds several letters, and their letter table has a couple of thousand non-zero
# entries (1,000 to 5,000); summing a word's rows counts its letters exactly. The BPE
# model (b) barely beats the blind guess, on new words and on the words it trained on
# alike: to count, it would have to learn that table, for each of 768 tokens how many of
# each letter it holds, from nothing but totals over whole words. The spell-first model
# (c) gets direct practice writing each token's letters, and once the letters are
# tokens, counting them is the problem model (a) solves. What is left of its errors
# comes mostly from misspelling new words. Checked below, with margins for other Python
# versions (their standard libraries give slightly different word lists).

# %%
a, b, c = (results[n] for n in names)
assert summed_right and len(multi) == VOCAB_SIZE - 256 and 1000 < facts < 5000, (len(multi),
                                                                                facts)
assert 2.5 < tokens_per_word.mean() < 3.1, "BPE should write a word in about 2.8 tokens"
assert 0.5 < blind < 0.7
assert all(0.2 < r[split]["count"] <= 1.0 for r in (a, b, c) for split in ("train", "test"))
if QUICK:  # 100 steps: no model has learned to count yet
    assert b["test"]["count"] < blind + 0.1, "model (b) should be near the blind guess"
else:
    assert a["test"]["count"] > 0.95, "the character model should count almost perfectly"
    for split in ("train", "test"):
        assert b[split]["count"] < blind + 0.15, "the BPE model should stay near blind"
    assert c["test"]["count"] > b["test"]["count"] + 0.1, "spelling first should help a lot"
    assert c["test"]["count"] > 0.8
    assert c["test"]["spelled"] > 0.55, "the spell-first model should spell most new words"
    assert c["test"]["count_if_spelled"] > c["test"]["count_if_misspelled"] + 0.1
print("all numbers as expected")

# %% [markdown]
# ## Where this lives in minitf/
#
# - `minitf/bpe.py`: `Tokenizer.train`, `Tokenizer.encode`, `Tokenizer.decode` (lesson 2);
#   a letter is its byte id, merges are ids from 256 up.
# - `minitf/tasks.py`: `Task` (how problems are drawn, solved and split) and
#   `Task.predict` (greedy answers); `count_letters` is the character-level task with
#   random letter strings. This lesson builds its word task with `counting_task` above.
# - `minitf/train.py`: `train`, the same loop for every task.
