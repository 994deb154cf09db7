"""Text as a task: a corpus -> a tokenizer -> token ids -> random windows; validation loss.

The toy tasks score only the answer. A language model scores every next token: a
training batch is B random windows of `context + 1` consecutive tokens of the corpus,
the model reads the first `context` of each and is scored on predicting tokens 1..context
(the shift by one; `loss_mask` is True everywhere but the last column). So `train` runs
on text with the same loop and the same loss as on addition.

The split is by position and fixed: the corpus's last 10% of bytes (`VAL_FRACTION`, cut
at a character boundary) is validation text, the rest training text, and each part is
tokenised on its own, so no token and no training window ever holds a byte of
validation text. A BPE tokenizer is trained on the training part only (byte-level: the
validation part always encodes); a character tokenizer's alphabet is every character of
the corpus (it is a list of symbols, not something learned from them).

Evaluation is the mean cross-entropy in nats per token on a fixed set of validation
windows (the same windows on every call; a seed picks them), and bits per byte: the same
total divided by ln 2 and by the UTF-8 bytes the scored tokens stand for. Bits per byte
puts a character model and BPE models of any vocabulary on one scale: each codes the
same bytes.

Tokenising is done once per corpus and tokenizer setting, in bounded memory (the file is
read in pieces, `minitf.long_text`), with a progress bar; the ids (uint16 when the
vocabulary fits) and the tokenizer go to the cache, keyed by the corpus's hash and the
settings, so a second run starts training at once and a changed file is tokenised anew.
The lesson "A language model from text" walks through all of it.

Left out: document boundaries and end-of-text tokens (a corpus is one stream), and
streaming batches from disk (the ids are memory-mapped, which does the same).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from minitf import checkpoint
from minitf.bpe import Tokenizer as BPETokenizer
from minitf.chars import CharTokenizer
from minitf.corpora import Corpus, cache_dir, file_corpus, python_docs
from minitf.long_text import char_boundary, file_pieces
from minitf.model import Config, Params, forward
from minitf.sample import generate_long
from minitf.tokens import TokenizerLike
from minitf.train import TrainConfig

VAL_FRACTION = 0.1  # the corpus's last 10% of bytes is validation text
EVAL_SEED = 2_024_001  # which validation windows `evaluate` scores by default
EVAL_WINDOWS = 200  # validation windows per measurement during training
EVAL_BATCH = 32  # windows per forward pass when scoring (one compiled shape)
PATTERN = "gpt4"  # BPE's pre-split for text
CACHE_FORMAT = "minitf-text-1"  # bump when the cached layout or the tokenisation changes
TOKENIZERS = ("bpe", "char")
SAMPLE_TEMPERATURE = 0.8  # sampling text: a little sharper than the model's own distribution
DEMO_PROMPT = "The for statement"
WORD = re.compile(r"[A-Za-z]+")  # a "word" of generated text, for `word_share`
DEFAULT_VOCAB = 1024  # BPE: 256 bytes + 768 merges

# Defaults per tokenizer: (model size, context length, training). The BPE model is the
# one of `minitf demo text`: 6 blocks, so the logit lens has a middle to look at, trained
# in about 3 minutes on 2 CPU cores. The character model is small and quick (MLP twice,
# not four times, as wide as the stream): benchmarks/text.py measures it on
# tinyshakespeare against nanoGPT's recipe.
TEXT_DEFAULTS: dict[str, tuple[dict, int, TrainConfig]] = {
    "bpe": ({"n_layer": 6, "n_head": 4, "d_model": 128, "d_mlp": 512}, 64,
            TrainConfig(steps=900, batch_size=32, lr=2e-3, beta2=0.99,
                        eval_every=150, eval_n=EVAL_WINDOWS)),
    "char": ({"n_layer": 3, "n_head": 4, "d_model": 128, "d_mlp": 256}, 64,
             TrainConfig(steps=1200, batch_size=16, lr=4e-3, beta2=0.99,
                         eval_every=200, eval_n=EVAL_WINDOWS)),
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class TextScore:
    """A model measured on validation windows."""

    val_loss: float  # mean cross-entropy, nats per scored token
    bits_per_byte: float  # the same total in bits, per UTF-8 byte of the scored tokens
    n_tokens: int  # scored tokens (context per window)
    n_bytes: int  # UTF-8 bytes those tokens stand for

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def bits_per_byte(nats_per_token: float, n_tokens: int, n_bytes: int) -> float:
    """Convert a loss in nats per token into bits per byte of the text it codes.

    The total cost is nats_per_token * n_tokens nats, i.e. that / ln 2 bits, spread over
    n_bytes bytes. E.g. 2.0 nats per token at 4 bytes per token is 0.72 bits per byte.
    """
    if n_tokens < 1 or n_bytes < 1:
        raise ValueError(f"need at least one token and one byte; got {n_tokens}, {n_bytes}")
    return nats_per_token * n_tokens / (math.log(2) * n_bytes)


@dataclasses.dataclass(frozen=True, eq=False)
class TextTask:
    """A tokenised corpus as a training task (`minitf.train.Trainable`)."""

    spec: dict  # corpus description and tokenizer settings: what a checkpoint records
    tokenizer: TokenizerLike  # CharTokenizer or bpe.Tokenizer
    context: int  # T: tokens the model reads per window (its max_len)
    train_ids: np.ndarray  # (N_train,) uint16/uint32 token ids of the training text
    val_ids: np.ndarray  # (N_val,) the validation text's ids
    corpus_note: str = ""  # the corpus's one line for the user, if any (`Corpus.note`)
    name = "text"  # (class attributes) the task's name in a checkpoint
    metric = "val_loss"  # what `evaluate` returns: lower is better

    @property
    def seq_len(self) -> int:
        """Tokens per training window: the context plus the one token after it."""
        return self.context + 1

    def batch(self, rng: np.random.Generator, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """B random windows of the training text -> tokens (B, T+1) int32, loss_mask (B, T+1).

        Every position but the last is scored: its next token is in the window.
        """
        return windows_batch(self.train_ids, rng, batch_size, self.seq_len)

    def score(self, params: Params, config: Config, *, n: int = EVAL_WINDOWS,
              seed: int = EVAL_SEED) -> TextScore:  # fmt: skip
        """Validation loss and bits per byte on `n` fixed validation windows."""
        windows = validation_windows(self.val_ids, self.context, n, seed)  # (n, T+1)
        return score_windows(params, config, windows, token_byte_lengths(self.tokenizer))

    def evaluate(self, params: Params, config: Config, *, n: int = EVAL_WINDOWS,
                 seed: int = EVAL_SEED) -> float:  # fmt: skip
        """Validation loss in nats per token (`train` records it every `eval_every` steps)."""
        return self.score(params, config, n=n, seed=seed).val_loss

    def checkpoint_data(self) -> dict[str, np.ndarray]:
        """Arrays a checkpoint keeps so `minitf eval` needs nothing else: the validation ids."""
        return {"validation": np.asarray(self.val_ids)}

    def config(self, **fields) -> Config:
        """A model Config sized for this task's vocabulary and context, plus any fields."""
        return Config(vocab_size=self.tokenizer.vocab_size, max_len=self.context, **fields)

    def frequent_tokens(self, min_count: int = 20) -> np.ndarray:
        """Ids that occur at least `min_count` times in the training text: the tokens whose
        embedding rows training has really moved (a row never used keeps its random start)."""
        counts = np.bincount(self.train_ids, minlength=self.tokenizer.vocab_size)  # (V,)
        return np.flatnonzero(counts >= min_count)

    def training_words(self) -> set[str]:
        """Every word (run of letters) of the training text: what `word_share` counts."""
        return set(WORD.findall(self.tokenizer.decode(self.train_ids)))

    def unigram_entropy(self) -> float:
        """Entropy (nats) of the training text's token frequencies: the loss of a model
        that ignores the context and predicts every token by how common it is."""
        counts = np.bincount(self.train_ids, minlength=self.tokenizer.vocab_size)  # (V,)
        p = counts[counts > 0] / counts.sum()
        return float(-(p * np.log(p)).sum())


# --- windows ---------------------------------------------------------------------------


def windows_batch(
    ids: np.ndarray, rng: np.random.Generator, batch_size: int, seq_len: int
) -> tuple[np.ndarray, np.ndarray]:
    """B windows of `seq_len` consecutive ids at random starts -> tokens, loss_mask (B, seq_len)."""
    starts = rng.integers(0, len(ids) - seq_len + 1, batch_size)  # (B,)
    tokens = np.asarray(ids)[starts[:, None] + np.arange(seq_len)[None]].astype(np.int32)
    loss_mask = np.ones(tokens.shape, dtype=bool)  # (B, seq_len)
    loss_mask[:, -1] = False  # the last token has no next token in the window
    return tokens, loss_mask


def validation_windows(val_ids: np.ndarray, context: int, n: int, seed: int = EVAL_SEED
                       ) -> np.ndarray:  # fmt: skip
    """n fixed windows of context + 1 validation ids -> (n, T+1) int32.

    The validation text is cut into consecutive windows that overlap by one token (window
    k's last token is window k+1's first), so together they score every validation token
    but the first exactly once. `seed` picks n of them (the same n for the same seed); if
    n is at least their number, all of them, in order: the whole validation text.
    """
    if n < 1:
        raise ValueError(f"need at least 1 validation window; got n={n}")
    n_windows = (len(val_ids) - 1) // context
    if n_windows < 1:
        raise ValueError(f"the validation text has {len(val_ids)} tokens, fewer than one "
                         f"window of {context + 1}; use a longer corpus or a shorter context")
    picked = np.arange(n_windows)
    if n < n_windows:
        picked = np.sort(np.random.default_rng(seed).choice(n_windows, n, replace=False))
    starts = picked * context  # (n,)
    return np.asarray(val_ids)[starts[:, None] + np.arange(context + 1)[None]].astype(np.int32)


@functools.partial(jax.jit, static_argnames="config")
def _token_nll(params: Params, windows: jax.Array, config: Config) -> jax.Array:
    """-log p(next token) at every position of each window. [B, T+1] -> [B, T]"""
    logits = forward(params, windows[:, :-1], config)  # (B, T, V)
    log_probs = jax.nn.log_softmax(logits, axis=-1)  # (B, T, V)
    return -jnp.take_along_axis(log_probs, windows[:, 1:, None], axis=-1)[..., 0]  # (B, T)


def score_windows(params: Params, config: Config, windows: np.ndarray,
                  byte_lengths: np.ndarray) -> TextScore:  # fmt: skip
    """Cross-entropy of every next token of the windows (n, T+1), in nats and bits per byte.

    The windows go through the model EVAL_BATCH at a time (the last batch padded with
    copies of the first window, which are not counted), so one shape is compiled.
    """
    windows = np.asarray(windows, dtype=np.int32)
    n = len(windows)
    total = 0.0
    for start in range(0, n, EVAL_BATCH):
        chunk = windows[start : start + EVAL_BATCH]  # (b, T+1)
        padded = np.concatenate([chunk, np.repeat(windows[:1], EVAL_BATCH - len(chunk), 0)])
        nll = np.asarray(_token_nll(params, jnp.asarray(padded), config))  # (EVAL_BATCH, T)
        total += float(nll[: len(chunk)].astype(np.float64).sum())
    n_tokens = windows[:, 1:].size
    n_bytes = int(byte_lengths[windows[:, 1:]].sum())
    return TextScore(total / n_tokens, bits_per_byte(total / n_tokens, n_tokens, n_bytes),
                     n_tokens, n_bytes)  # fmt: skip


def token_byte_lengths(tokenizer: TokenizerLike) -> np.ndarray:
    """UTF-8 bytes each token id stands for. -> (V,) int"""
    if isinstance(tokenizer, CharTokenizer):
        return np.array([len(c.encode("utf-8")) for c in tokenizer.chars])
    return np.array([len(tokenizer.token_bytes(i)) for i in range(tokenizer.vocab_size)])


# --- building a task: corpus -> tokenizer -> ids (cached) --------------------------------


def text_task(
    corpus: str | os.PathLike | Corpus | None = None,
    *,
    tokenizer: str = "bpe",
    vocab_size: int | None = None,
    context: int = 64,
    val_fraction: float = VAL_FRACTION,
    progress: bool = True,
) -> TextTask:
    """The text task for a corpus: a file path, a `Corpus`, or None for Python's own docs.

    `tokenizer` is "bpe" (byte-level BPE with `vocab_size` tokens, default 1024, trained
    on the training text) or "char" (one token per character; no vocab_size). The
    tokenised corpus is cached (see the module docstring); `progress` shows the bars.
    """
    vocab_size = check_tokenizer_settings(tokenizer, vocab_size)  # before reading the corpus
    if not (isinstance(context, int) and context >= 1):
        raise ValueError(f"the context (--seq-len) must be a positive number of tokens; "
                         f"got {context!r}")  # fmt: skip
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1; got {val_fraction!r}")
    if not isinstance(corpus, Corpus):
        corpus = python_docs() if corpus is None else file_corpus(corpus)
    settings = {"tokenizer": tokenizer, "vocab_size": vocab_size, "val_fraction": val_fraction}
    if tokenizer == "bpe":
        settings["pattern"] = PATTERN
    folder = _tokenised(corpus, settings, progress)
    info = json.loads((folder / "info.json").read_text(encoding="utf-8"))
    described = info["tokenizer"]  # read back through the checkpoints' tokenizer registry
    tok = checkpoint.TOKENIZERS[described["kind"]].from_description(described, folder)
    train_ids = np.load(folder / "train.npy", mmap_mode="r")
    val_ids = np.load(folder / "val.npy", mmap_mode="r")
    check_long_enough(corpus, len(train_ids), len(val_ids), context, val_fraction)
    spec = {"corpus": corpus.describe(), **settings, "context": context}
    return TextTask(spec=spec, tokenizer=tok, context=context, train_ids=train_ids,
                    val_ids=val_ids, corpus_note=corpus.note)  # fmt: skip


def check_tokenizer_settings(tokenizer: str, vocab_size: int | None) -> int | None:
    """Validate the tokenizer choice; returns the vocab size to use (None for characters)."""
    if tokenizer not in TOKENIZERS:
        raise ValueError(f"tokenizer must be one of {list(TOKENIZERS)}; got {tokenizer!r}")
    if tokenizer == "char":
        if vocab_size is not None:
            raise ValueError("--vocab-size applies to --tokenizer bpe only: a character "
                             "tokenizer has one token per character of the corpus")  # fmt: skip
        return None
    vocab_size = DEFAULT_VOCAB if vocab_size is None else vocab_size
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 257:
        raise ValueError(f"--vocab-size must be at least 257 for byte-level BPE (its 256 "
                         f"byte tokens plus at least one merge); got {vocab_size!r}")  # fmt: skip
    if vocab_size > 2**32:
        raise ValueError(f"--vocab-size must be at most 2**32; got {vocab_size}")
    return vocab_size


def check_long_enough(corpus: Corpus, n_train: int, n_val: int, context: int,
                      val_fraction: float) -> None:  # fmt: skip
    """A ValueError unless each part holds at least one window of context + 1 tokens."""
    if min(n_train, n_val) < context + 1:
        raise ValueError(
            f"corpus {corpus.name} is too short: its training part has {n_train} tokens and "
            f"its validation part (the last {val_fraction:.0%}) {n_val}, but each needs at "
            f"least one window of context + 1 = {context + 1} tokens; use a longer text or a "
            "smaller --seq-len"
        )


def _tokenised(corpus: Corpus, settings: dict, progress: bool) -> Path:
    """The cache folder with the tokenizer and ids for (corpus, settings); made if missing."""
    key = json.dumps({"format": CACHE_FORMAT, "sha256": corpus.sha256, **settings},
                     sort_keys=True)  # fmt: skip
    folder = cache_dir() / "text" / hashlib.sha256(key.encode()).hexdigest()[:20]
    if (folder / "info.json").is_file():
        return folder
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        train_bytes = math.floor(corpus.n_bytes * (1 - settings["val_fraction"]))
        cut = char_boundary(corpus.path, train_bytes)  # the split, on a character boundary
        tok = _make_tokenizer(corpus, settings, cut, progress)
        parts = {"train": (0, cut), "val": (cut, corpus.n_bytes)}
        lengths = {}
        for part, (start, stop) in parts.items():
            ids = _encode_file(tok, corpus, start, stop, f"tokenise {part}", progress)
            np.save(tmp / f"{part}.npy", ids)
            lengths[part] = len(ids)
        info = {"format": CACHE_FORMAT, "corpus": corpus.describe(), "settings": settings,
                "split_byte": cut, "n_tokens": lengths,
                "tokenizer": tok.describe(tmp)}  # fmt: skip
        (tmp / "info.json").write_text(json.dumps(info, indent=1), encoding="utf-8")
        try:
            tmp.rename(folder)
        except OSError:  # another process finished the same folder first: use theirs
            if not (folder / "info.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _bytes_bar(total: int, desc: str, progress: bool) -> tqdm:
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, disable=not progress)


def _make_tokenizer(corpus: Corpus, settings: dict, cut: int, progress: bool) -> TokenizerLike:
    """A BPE tokenizer trained on the training bytes, or the corpus's character alphabet."""
    if settings["tokenizer"] == "char":
        chars: set[str] = set()
        with _bytes_bar(corpus.n_bytes, "alphabet", progress) as bar:
            for piece in file_pieces(corpus.path, None, on_bytes=bar.update):
                chars.update(piece)
        return CharTokenizer("".join(sorted(chars)))
    return _train_bpe(corpus, settings, cut, progress)


def _train_bpe(corpus: Corpus, settings: dict, cut: int, progress: bool) -> BPETokenizer:
    with _bytes_bar(cut, "bpe: count chunks", progress) as bar:
        pieces = file_pieces(corpus.path, PATTERN, stop=cut, on_bytes=bar.update)
        return BPETokenizer.train(pieces, settings["vocab_size"], pattern=PATTERN,
                                  progress=progress)  # fmt: skip


def _encode_file(tok: TokenizerLike, corpus: Corpus, start: int, stop: int, desc: str,
                 progress: bool) -> np.ndarray:  # fmt: skip
    """The ids of bytes start:stop of the corpus, piece by piece. -> (N,) uint16 or uint32"""
    dtype = np.uint16 if tok.vocab_size <= 2**16 else np.uint32
    arrays = []
    with _bytes_bar(stop - start, desc, progress) as bar:
        for piece in file_pieces(corpus.path, PATTERN, start=start, stop=stop,
                                 on_bytes=bar.update):  # fmt: skip
            arrays.append(np.asarray(tok.encode(piece), dtype=dtype))
    return np.concatenate(arrays) if arrays else np.zeros(0, dtype)


# --- writing text ---------------------------------------------------------------------------


def encode_prompt(tokenizer: TokenizerLike, prompt: str) -> list[int]:
    """A prompt's ids, or a ValueError naming the characters a character model lacks."""
    if not prompt:
        raise ValueError("the prompt is empty; give the model some text to continue, e.g. "
                         f"--prompt {DEMO_PROMPT!r}")  # fmt: skip
    chars = getattr(tokenizer, "chars", None)
    if tokenizer.kind == "chars" and chars is not None:
        unknown = sorted(set(prompt) - set(chars))
        if unknown:
            shown = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in unknown)
            raise ValueError(f"the prompt contains characters this character-level model has no "
                             f"token for: {shown}; it knows only the {len(chars)} characters "
                             "of its corpus")  # fmt: skip
    return tokenizer.encode(prompt)


def word_share(samples: Iterable[str], known_words: set[str]) -> float:
    """Share of the words (runs of letters) in `samples` that are in `known_words`: a crude
    but honest measure of generated text (random tokens glue into non-words)."""
    words = [w for sample in samples for w in WORD.findall(sample)]
    return sum(w in known_words for w in words) / max(1, len(words))


def continue_text(params: Params, config: Config, tokenizer: TokenizerLike, prompt: str,
                  n_new: int, *, temperature: float = SAMPLE_TEMPERATURE, top_k: int | None = None,
                  top_p: float | None = None, seed: int = 0) -> str:  # fmt: skip
    """The prompt continued by n_new tokens (as text, the prompt included)."""
    ids = encode_prompt(tokenizer, prompt)
    out = generate_long(params, config, ids, n_new, temperature=temperature, top_k=top_k,
                        top_p=top_p, key=jax.random.key(seed))  # fmt: skip
    return prompt + tokenizer.decode(out[len(ids) :])
