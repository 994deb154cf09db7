"""Toy tasks as data generators: batches with a loss mask over the answer, and exact match.

A task is a problem written as characters, `prompt` then `answer`, e.g. `123+045=` then
`0168`. Every problem of a task has the same prompt length P and answer length A, so a
batch is a plain (B, P + A) array and nobody needs padding tokens or an end marker.
The model learns by predicting every next token, but only the predictions of answer
tokens count (the loss mask): the prompt is random, so there is nothing to learn there.

Train and test never share a problem. Each task splits its problem space by a fixed
rule on the prompt (a hash of it, or for modular addition a seeded random split of all
p*p pairs), training draws only from the train side and `evaluate` only from the test
side, so exact match measures generalisation and not memory.

Left out: variable-length answers, text tasks with BPE (see the lessons), and curricula.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable

import numpy as np

from minitf.chars import CharTokenizer
from minitf.model import Config, Params
from minitf.sample import generate
from minitf.train import TrainConfig, check_eval_n, check_model_fits, check_seed

DIGITS = "0123456789"  # ids 0-9 are the digits themselves, so ids double as values
# one symbol per residue for modular_addition(one_token=True): 0-9, a-z, A-Z, then the
# characters from U+0100 on (Latin letters first); only their order matters: id = value
NUMBER_SYMBOLS = DIGITS + "abcdefghijklmnopqrstuvwxyz" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
EVAL_SEED = 2_024_001  # evaluation's default seed: not a seed training batches come from
HOLDOUT = 0.1  # fraction of a problem space kept for testing when split by hash
EVAL_CHUNK = 4096  # problems `evaluate` answers at once

Ids = np.ndarray  # numpy int array of token ids


@dataclasses.dataclass(frozen=True)
class Task:
    """One toy task: how to draw problems, solve them, and split them into train/test.

    `draw`, `solve` and `is_test` work on numpy arrays of token ids, many problems at
    once: prompts (n, P), answers (n, A).
    """

    name: str  # the key in TASKS
    spec: dict  # keyword arguments: TASKS[name](**spec) rebuilds this task
    tokenizer: CharTokenizer  # one token per character
    prompt_len: int  # P: prompt characters, up to and including the "=" or ":"
    answer_len: int  # A: answer characters, fixed for every problem
    draw: Callable[[np.random.Generator, int], Ids]  # (rng, n) -> (n, P) prompts, all problems
    solve: Callable[[Ids], Ids]  # (n, P) prompts -> (n, A) correct answers
    is_test: Callable[[Ids], np.ndarray]  # (n, P) prompts -> (n,) bool: held out from training

    @property
    def seq_len(self) -> int:
        """Tokens in one problem, P + A: the model's max_len must be at least this."""
        return self.prompt_len + self.answer_len

    def problems(self, rng: np.random.Generator, n: int, split: str = "train") -> tuple[Ids, Ids]:
        """n problems from one side of the split -> prompts (n, P), answers (n, A) int32."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
        want_test = split == "test"
        kept, have = [], 0
        for _ in range(1000):  # rejection sampling: draw from everything, keep one side
            prompts = self.draw(rng, max(2 * n, 64))  # (m, P)
            prompts = prompts[self.is_test(prompts) == want_test]  # (m', P)
            kept.append(prompts)
            have += len(prompts)
            if have >= n:
                break
        else:
            raise ValueError(
                f"task {self.name} {self.spec} has no {split} problems (its problem space is "
                "too small to split); make the problems longer"
            )
        prompts = np.concatenate(kept)[:n].astype(np.int32)  # (n, P)
        return prompts, self.solve(prompts).astype(np.int32)  # (n, P), (n, A)

    def batch(self, rng: np.random.Generator, batch_size: int) -> tuple[Ids, np.ndarray]:
        """A training batch -> tokens (B, T) int32 and loss_mask (B, T) bool, T = P + A.

        loss_mask[b, t] is True when the token at t + 1 is an answer token: the model's
        prediction at position t is then scored. So the mask starts at the last prompt
        token (whose next token is the first answer digit) and the last column is False.
        The lesson "Next-token training" explains the mask.
        """
        prompts, answers = self.problems(rng, batch_size, "train")  # (B, P), (B, A)
        tokens = np.concatenate([prompts, answers], axis=1)  # (B, T)
        position = np.arange(self.seq_len)  # (T,)
        scored = (position >= self.prompt_len - 1) & (position < self.seq_len - 1)  # (T,)
        loss_mask = np.broadcast_to(scored[None], tokens.shape).copy()  # (B, T)
        return tokens, loss_mask

    def answer(self, prompt: str) -> str:
        """The correct answer to one prompt written as text, e.g. '123+045=' -> '0168'."""
        ids = np.array([self.tokenizer.encode(prompt)])  # (1, P)
        if ids.shape[1] != self.prompt_len:
            raise ValueError(
                f"a {self.name} prompt has {self.prompt_len} characters; got {prompt!r}"
            )
        return self.tokenizer.decode(self.solve(ids)[0])

    def examples(self, rng: np.random.Generator, n: int, split: str = "test") -> list[tuple]:
        """n problems as text: [(prompt, answer), ...]."""
        prompts, answers = self.problems(rng, n, split)
        decode = self.tokenizer.decode
        return [(decode(p), decode(a)) for p, a in zip(prompts, answers, strict=True)]

    def predict(self, params: Params, config: Config, prompts: Ids) -> Ids:
        """The model's greedy answers: prompts (n, P) -> answers (n, A) as numpy ids."""
        check_model_fits(config, self)
        tokens = generate(params, config, prompts, self.answer_len, temperature=0)  # (n, P + A)
        return tokens[:, self.prompt_len :]  # (n, A)

    def evaluate(
        self, params: Params, config: Config, *, n: int = 2000, seed: int = EVAL_SEED
    ) -> float:
        """Exact-match accuracy: the fraction of n test problems answered fully right."""
        check_eval_n(n)
        check_seed(seed)
        prompts, answers = self.problems(np.random.default_rng(seed), n, "test")  # (n, P), (n, A)
        # a chunk at a time, so memory stays bounded however many problems are asked for
        predicted = np.concatenate([self.predict(params, config, prompts[i : i + EVAL_CHUNK])
                                    for i in range(0, n, EVAL_CHUNK)])  # (n, A)  # fmt: skip
        return exact_match(predicted, answers)


def exact_match(predicted: Ids, answers: Ids) -> float:
    """Fraction of rows where every answer token is right. (n, A), (n, A) -> float"""
    return float(np.all(np.asarray(predicted) == np.asarray(answers), axis=1).mean())


# Per-task defaults, in one place: the model's size and how to train it. Each finishes on
# a 2-core laptop CPU; the README states the numbers to expect.
SMALL = {"n_layer": 2, "n_head": 4, "d_model": 64, "d_mlp": 256}
WIDE = {"n_layer": 2, "n_head": 4, "d_model": 128, "d_mlp": 512}
TRAIN_DEFAULTS: dict[str, tuple[dict, TrainConfig]] = {
    "addition": (SMALL, TrainConfig(steps=1500, lr=3e-3)),
    "modular_addition": ({**WIDE, "n_layer": 1},
                         TrainConfig(steps=3000, lr=1e-3, weight_decay=1.0)),
    "count_letters": (WIDE, TrainConfig(steps=2000, lr=1e-3)),
    "copy": (SMALL, TrainConfig(steps=600, lr=3e-3)),
    "reverse": (SMALL, TrainConfig(steps=800, lr=3e-3)),
    "sort": (SMALL, TrainConfig(steps=1500, lr=3e-3)),
}  # fmt: skip


def train_defaults(task: Task) -> tuple[dict, TrainConfig]:
    """The model size (Config fields) and training settings `minitf train` uses for a task."""
    model, settings = TRAIN_DEFAULTS[task.name]
    if task.name == "addition" and task.spec["digits"] > 3:
        # every extra digit adds a longer carry chain to learn: train longer
        settings = dataclasses.replace(settings, steps=settings.steps
                                       + 1250 * (task.spec["digits"] - 3))  # fmt: skip
    return dict(model), settings


def config_for(task: Task, **fields) -> Config:
    """A model Config sized for a task's vocabulary and sequence length, plus any fields."""
    return Config(vocab_size=task.tokenizer.vocab_size, max_len=task.seq_len, **fields)


# --- helpers shared by the tasks ----------------------------------------------------------


def hash_split(prompts: Ids, holdout: float = HOLDOUT) -> np.ndarray:
    """Test problems by a fixed rule: a hash of the prompt below `holdout`. (n, P) -> (n,)

    The same prompt always lands on the same side, whatever the seed, so training (which
    only draws train problems) can never have seen a test problem.
    """
    h = np.full(len(prompts), 0xCBF29CE484222325, dtype=np.uint64)  # (n,) FNV-1a offset
    for column in np.asarray(prompts, dtype=np.uint64).T:  # FNV-1a over the token ids
        h = (h ^ column) * np.uint64(0x100000001B3)  # (n,) wraps around mod 2**64
    # murmur3's finaliser mixes every input bit into the top bits
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    return (h >> np.uint64(11)).astype(np.float64) / 2.0**53 < holdout  # (n,)


def _digits_of(numbers: np.ndarray, width: int, base: int = 10) -> Ids:
    """Numbers -> their zero-padded digits, most significant first. (n,) -> (n, width)"""
    powers = base ** np.arange(width - 1, -1, -1, dtype=np.int64)  # (width,)
    return (numbers[:, None] // powers[None]) % base  # (n, width)


def _number_of(digits: Ids, base: int = 10) -> np.ndarray:
    """Digits, most significant first -> numbers. (n, width) -> (n,)"""
    width = digits.shape[1]
    powers = base ** np.arange(width - 1, -1, -1, dtype=np.int64)  # (width,)
    return (digits.astype(np.int64) * powers[None]).sum(axis=1)  # (n,)


def _column(n: int, token_id: int) -> Ids:
    return np.full((n, 1), token_id, dtype=np.int64)  # (n, 1)


# --- the tasks ----------------------------------------------------------------------------


def addition(digits: int = 3, *, reverse_answer: bool = False) -> Task:
    """`123+045=0168`: add two zero-padded numbers of `digits` digits.

    The answer has digits + 1 characters (room for the carry). With reverse_answer the
    answer is written least-significant digit first (`8610`), the order in which a
    person computes it, which makes the task much easier for a left-to-right model
    (the lesson "Next-token training" measures how much).
    """
    if not 1 <= digits <= 9:
        raise ValueError(f"addition needs 1 <= digits <= 9; got {digits}")
    tok = CharTokenizer(DIGITS + "+=")
    plus, equals = tok.encode("+=")

    def draw(rng: np.random.Generator, n: int) -> Ids:
        a, b = (_digits_of(rng.integers(0, 10**digits, n), digits) for _ in range(2))  # (n, d)
        return np.concatenate([a, _column(n, plus), b, _column(n, equals)], axis=1)  # (n, P)

    def solve(prompts: Ids) -> Ids:
        total = _number_of(prompts[:, :digits]) + _number_of(prompts[:, digits + 1 : -1])  # (n,)
        answer = _digits_of(total, digits + 1)  # (n, A)
        return answer[:, ::-1] if reverse_answer else answer  # (n, A)

    return Task(
        name="addition",
        spec={"digits": digits, "reverse_answer": reverse_answer},
        tokenizer=tok,
        prompt_len=2 * digits + 2,
        answer_len=digits + 1,
        draw=draw,
        solve=solve,
        is_test=hash_split,
    )


def modular_addition(
    p: int = 97, *, train_fraction: float = 0.5, split_seed: int = 0, one_token: bool = False
) -> Task:
    """`05+17=22` for p = 23: (a + b) mod p, the setup of the grokking papers.

    All p*p pairs are split once, at random with `split_seed`, into a train part
    (`train_fraction` of them) and a test part; a small train part plus weight decay is
    where a model first memorises and only much later generalises ("groks").
    Numbers are written with a fixed number of digits, one token per digit. With
    one_token, each number is a single token whose id is its value (`f+h=9` for p = 23,
    like base p): the embedding then has one row per residue, as in the papers, and
    the lesson "Grokking" reads its Fourier spectrum. The split into pairs is the same either way.
    """
    if not 2 <= p <= 9999:
        raise ValueError(f"modular_addition needs 2 <= p <= 9999; got {p}")
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be between 0 and 1; got {train_fraction}")
    base = p if one_token else 10  # one digit in base p is one token per number
    width = 1 if one_token else len(str(p - 1))
    tok = CharTokenizer((_number_symbols(p) if one_token else DIGITS) + "+=")
    plus, equals = tok.encode("+=")
    # pair index a * p + b -> True when the pair is a test pair
    order = np.random.default_rng(split_seed).permutation(p * p)  # (p*p,)
    test_table = np.zeros(p * p, dtype=bool)  # (p*p,)
    test_table[order[round(train_fraction * p * p) :]] = True

    def draw(rng: np.random.Generator, n: int) -> Ids:
        a, b = (_digits_of(rng.integers(0, p, n), width, base) for _ in range(2))  # (n, w)
        return np.concatenate([a, _column(n, plus), b, _column(n, equals)], axis=1)  # (n, P)

    def operands(prompts: Ids) -> tuple[np.ndarray, np.ndarray]:
        return _number_of(prompts[:, :width], base), _number_of(prompts[:, width + 1 : -1], base)

    def solve(prompts: Ids) -> Ids:
        a, b = operands(prompts)  # (n,), (n,)
        return _digits_of((a + b) % p, width, base)  # (n, w)

    def is_test(prompts: Ids) -> np.ndarray:
        a, b = operands(prompts)  # (n,), (n,)
        return test_table[a * p + b]  # (n,)

    return Task(
        name="modular_addition",
        spec={"p": p, "train_fraction": train_fraction, "split_seed": split_seed,
              "one_token": one_token},
        tokenizer=tok,
        prompt_len=2 * width + 2,
        answer_len=width,
        draw=draw,
        solve=solve,
        is_test=is_test,
    )


def _number_symbols(p: int) -> str:
    """p distinct characters, one per residue 0..p-1: NUMBER_SYMBOLS, then U+0100 onwards."""
    extra = "".join(chr(0x100 + i) for i in range(max(0, p - len(NUMBER_SYMBOLS))))
    return (NUMBER_SYMBOLS + extra)[:p]


def count_letters(max_word_len: int = 10, *, n_letters: int = 6) -> Task:
    """`....abcaba:a=03`: how many times a letter occurs in a word.

    Words of 1..max_word_len letters drawn uniformly from the first n_letters of the
    alphabet (few letters, so counts above 1 are common), left-padded with "." to a fixed
    width; the letter asked about is drawn from the same letters. The count is written
    with as many digits as max_word_len has. One token per character here: the lesson
    "Tokenization has consequences"
    shows how much harder this gets when BPE hides the letters inside tokens.
    """
    if not 1 <= max_word_len <= 99 or not 1 <= n_letters <= 26:
        raise ValueError(
            f"count_letters needs 1 <= max_word_len <= 99 and 1 <= n_letters <= 26; "
            f"got max_word_len={max_word_len}, n_letters={n_letters}"
        )
    letters = "abcdefghijklmnopqrstuvwxyz"[:n_letters]
    tok = CharTokenizer(DIGITS + letters + ".:=")
    pad, colon, equals = tok.encode(".:=")
    first_letter = tok.encode(letters[0])[0]  # letters are consecutive ids from here
    width = len(str(max_word_len))

    def draw(rng: np.random.Generator, n: int) -> Ids:
        word = first_letter + rng.integers(0, n_letters, (n, max_word_len))  # (n, W)
        length = rng.integers(1, max_word_len + 1, n)  # (n,)
        padding = np.arange(max_word_len)[None] < (max_word_len - length)[:, None]  # (n, W)
        word = np.where(padding, pad, word)  # (n, W) left-padded
        asked = first_letter + rng.integers(0, n_letters, (n, 1))  # (n, 1)
        return np.concatenate([word, _column(n, colon), asked, _column(n, equals)], axis=1)

    def solve(prompts: Ids) -> Ids:
        word, asked = prompts[:, :max_word_len], prompts[:, max_word_len + 1]  # (n, W), (n,)
        return _digits_of((word == asked[:, None]).sum(axis=1), width)  # (n, width)

    return Task(
        name="count_letters",
        spec={"max_word_len": max_word_len, "n_letters": n_letters},
        tokenizer=tok,
        prompt_len=max_word_len + 3,
        answer_len=width,
        draw=draw,
        solve=solve,
        is_test=hash_split,
    )


def _sequence_task(name: str, length: int, transform: Callable[[Ids], Ids]) -> Task:
    """`4721=` + transform(`4721`): the shared shape of copy, reverse and sort."""
    if not 1 <= length <= 32:
        raise ValueError(f"{name} needs 1 <= length <= 32; got {length}")
    tok = CharTokenizer(DIGITS + "=")
    equals = tok.encode("=")[0]

    def draw(rng: np.random.Generator, n: int) -> Ids:
        digits = rng.integers(0, 10, (n, length))  # (n, length)
        return np.concatenate([digits, _column(n, equals)], axis=1)  # (n, P): the digits, then '='

    return Task(
        name=name,
        spec={"length": length},
        tokenizer=tok,
        prompt_len=length + 1,
        answer_len=length,
        draw=draw,
        solve=lambda prompts: transform(prompts[:, :length]),  # (n, length)
        is_test=hash_split,
    )


def copy(length: int = 8) -> Task:
    """`4721=4721`: repeat the digits. Solved by one attention head looking back L+1 places."""
    return _sequence_task("copy", length, lambda digits: digits)


def reverse(length: int = 8) -> Task:
    """`4721=1274`: the digits in reverse order."""
    return _sequence_task("reverse", length, lambda digits: digits[:, ::-1])


def sort(length: int = 8) -> Task:
    """`4721=1247`: the digits in increasing order."""
    return _sequence_task("sort", length, lambda digits: np.sort(digits, axis=1))


TASKS: dict[str, Callable[..., Task]] = {
    "addition": addition,
    "modular_addition": modular_addition,
    "count_letters": count_letters,
    "copy": copy,
    "reverse": reverse,
    "sort": sort,
}


def make_task(name: str, **spec) -> Task:
    """TASKS[name](**spec) with a clear error for an unknown name or a setting of the
    wrong kind (a checkpoint's config.json may have been edited by hand)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {sorted(TASKS)}")
    accepts = inspect.signature(TASKS[name], eval_str=True).parameters
    for key, value in spec.items():
        if key not in accepts:
            raise ValueError(f"task {name} has no setting {key!r}; its settings: "
                             f"{sorted(accepts)}")  # fmt: skip
        kind = accepts[key].annotation
        if kind in (int, bool, float) and not _is_kind(value, kind):
            raise ValueError(f"task {name}'s {key} must be {kind.__name__}; got {value!r}")
    return TASKS[name](**spec)


def _is_kind(value: object, kind: type) -> bool:
    if isinstance(value, bool):  # an int to Python, but digits=True is a mistake, not 1
        return kind is bool
    return isinstance(value, int | float) if kind is float else isinstance(value, kind)
