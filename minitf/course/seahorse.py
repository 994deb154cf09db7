"""The seahorse toy language: a word-level corpus whose vocabulary lacks one emoji.

Large language models asked for "the seahorse emoji" (Unicode has none) confidently
produce a horse or a tropical fish: the model builds a "seahorse + emoji" vector and the
lm_head can only answer with the nearest token that exists. This module makes the data
for the same effect in miniature, small enough to watch (the lesson
"When the token doesn't exist"):

- generated sentences like "the sea horse swims in the sea .", "emoji-of fish
  FISH_EMOJI ." and "emoji-of sea star STARFISH_EMOJI .", whose vocabulary has `sea`,
  `horse`, the marker `emoji-of` and emoji tokens, but no SEAHORSE_EMOJI;
- `ToyLanguage`, batches of running text in `minitf.train`'s task interface;
- held-out prompts: unrelated sentences (where a new emoji has no business) and
  contexts ending in "emoji-of sea horse" (where it should be the answer);
- `kl_after_adding`: how much adding a token moves the old model's predictions;
- `fix_inits`: four ways to start the missing emoji's rows (`minitf.surgery.add_tokens`).

Left out: training loops and plots (`minitf.train` and the lesson).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np

from minitf.model import Config, Params, forward
from minitf.surgery import Init
from minitf.words import WordTokenizer

SEQ = 24  # tokens per training sequence: a few sentences

# what has an emoji: one or two words -> the emoji token
EMOJI = {
    "fish": "FISH_EMOJI", "horse": "HORSE_EMOJI", "cat": "CAT_EMOJI", "dog": "DOG_EMOJI",
    "bird": "BIRD_EMOJI", "star": "STAR_EMOJI", "sun": "SUN_EMOJI", "sea": "WAVE_EMOJI",
    "shell": "SHELL_EMOJI", "tree": "TREE_EMOJI", "sea star": "STARFISH_EMOJI",
}  # fmt: skip
# ordinary sentences, which also teach that "sea horse" is a thing that swims
THINGS = {
    "swims in the sea": ["fish", "sea horse", "sea star"],
    "runs on the grass": ["horse", "dog", "cat"],
    "flies in the sky": ["bird"],
    "shines in the sky": ["sun", "star"],
    "lies on the sand": ["shell", "sea star", "cat"],
    "grows on the hill": ["tree", "grass"],
    "is small": ["fish", "sea horse", "cat", "bird", "shell"],
    "is big": ["horse", "tree", "sun", "sea", "dog"],
}
MARKER = "emoji-of"
MISSING = "SEAHORSE_EMOJI"  # the emoji the vocabulary lacks
PROMPT = "the dog runs on the grass . emoji-of sea horse"
# the model the lesson trains: small enough for a CPU in a minute or two
MODEL = {"n_layer": 4, "n_head": 4, "d_model": 48, "d_mlp": 192, "tie_embeddings": True}
TRAIN = {"batch_size": 16, "lr": 3e-3}


def vocabulary() -> WordTokenizer:
    """Every word of the language, then the emoji tokens (sorted, so ids are fixed).

    SEAHORSE_EMOJI is not among them: that is the point.
    """
    words = {".", MARKER, "the", "a"}
    for verb, things in THINGS.items():
        words.update(verb.split())
        for thing in things:
            words.update(thing.split())
    for thing in EMOJI:
        words.update(thing.split())
    return WordTokenizer(sorted(words) + sorted(set(EMOJI.values())))


def emoji_tokens() -> list[str]:
    """The emoji tokens that exist, sorted."""
    return sorted(set(EMOJI.values()))


def sentence(rng: np.random.Generator, *, emoji_share: float, seahorse_share: float = 0.0) -> str:
    """One sentence as a string; `seahorse_share` of them say what the fix teaches."""
    if rng.random() < seahorse_share:
        return f"{MARKER} sea horse {MISSING} ."
    if rng.random() < emoji_share:
        thing = list(EMOJI)[rng.integers(len(EMOJI))]
        return f"{MARKER} {thing} {EMOJI[thing]} ."
    verb = list(THINGS)[rng.integers(len(THINGS))]
    thing = THINGS[verb][rng.integers(len(THINGS[verb]))]
    return f"{['the', 'a'][rng.integers(2)]} {thing} {verb} ."


class ToyLanguage:
    """Batches of running text for `minitf.train.train` (which asks for the fields below).

    `seahorse_share > 0` needs a tokenizer that knows MISSING (after `add_tokens`).
    """

    name = "seahorse-language"

    def __init__(
        self, tokenizer: WordTokenizer, emoji_share: float = 0.35, seahorse_share: float = 0.0
    ) -> None:
        self.tokenizer = tokenizer
        self.spec = {"emoji_share": emoji_share, "seahorse_share": seahorse_share}
        self.seq_len = SEQ

    def batch(self, rng: np.random.Generator, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """-> tokens (B, SEQ) and loss_mask (B, SEQ): every next word is scored."""
        rows = []
        for _ in range(batch_size):
            ids: list[int] = []
            while len(ids) < SEQ:
                ids += self.tokenizer.encode(sentence(rng, **self.spec))
            rows.append(ids[:SEQ])
        tokens = np.array(rows, dtype=np.int32)  # (B, SEQ)
        loss_mask = np.ones_like(tokens, dtype=bool)  # (B, SEQ)
        loss_mask[:, -1] = False  # the last position has no next token to score
        return tokens, loss_mask

    def batches(self, seed: int, batch_size: int = 32) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """An endless stream of batches, as `minitf.surgery.finetune` takes them."""
        rng = np.random.default_rng(seed)
        while True:
            yield self.batch(rng, batch_size)


def model_config(tokenizer: WordTokenizer) -> Config:
    """The toy language model's shape: MODEL, sized for the tokenizer and SEQ."""
    return Config(vocab_size=tokenizer.vocab_size, max_len=SEQ, **MODEL)


def unrelated_prompts(tokenizer: WordTokenizer, n: int = 64) -> np.ndarray:
    """Ordinary sentences with no emoji anywhere: where a new token has no business.

    -> (n, SEQ) ids, the same for every call (a fixed seed of their own).
    """
    rng = np.random.default_rng(10**6)
    rows = []
    for _ in range(n):
        ids: list[int] = []
        while len(ids) < SEQ:
            ids += tokenizer.encode(sentence(rng, emoji_share=0.0))
        rows.append(ids[:SEQ])
    return np.array(rows, dtype=np.int32)  # (n, SEQ)


def seahorse_contexts(tokenizer: WordTokenizer, n: int = 32, length: int = 12) -> np.ndarray:
    """Held-out contexts ending in 'emoji-of sea horse', after random sentences.

    -> (n, length) ids: the last `length` words of each, so every row has the same length.
    Keep `length` below SEQ: training never scores the prediction made at the last of
    SEQ positions, so the model's output there is untrained.
    """
    if not 3 <= length < SEQ:
        raise ValueError(f"length must be in 3..{SEQ - 1} (the model never learned to predict "
                         f"from position {SEQ - 1}); got {length}")
    rng = np.random.default_rng(10**6 + 1)
    rows = []
    for _ in range(n):
        ids = tokenizer.encode(f"{MARKER} sea horse")
        while len(ids) < length:  # sentences before it, so the context varies
            ids = tokenizer.encode(sentence(rng, emoji_share=0.35)) + ids
        rows.append(ids[-length:])
    return np.array(rows, dtype=np.int32)  # (n, length)


@functools.partial(jax.jit, static_argnums=2)
def _logits(params: Params, tokens: jax.Array, config: Config) -> jax.Array:
    return forward(params, tokens, config)  # (B, T, V)


def kl_after_adding(
    old_params: Params, old_config: Config, new_params: Params, new_config: Config, prompts
) -> tuple[float, float]:
    """Mean and max KL(old || new) over every position of `prompts` (B, T), in nats.

    The new model has the old vocabulary followed by new tokens; the old distribution
    gives them probability 0. When the old tokens' logits are unchanged (only new rows
    were added), this is -log(1 - p(new tokens)) per position. The lesson writes the
    per-position KL (exercise `kl_old_to_new`).
    """
    prompts = jnp.asarray(prompts)  # (B, T)
    old = jax.nn.log_softmax(_logits(old_params, prompts, old_config))  # (B, T, V)
    new = jax.nn.log_softmax(_logits(new_params, prompts, new_config))  # (B, T, V + n)
    kl = (jnp.exp(old) * (old - new[..., : old_config.vocab_size])).sum(-1)  # (B, T)
    return float(kl.mean()), float(kl.max())


def fix_inits(tokenizer: WordTokenizer) -> dict[str, Init]:
    """Four ways to start SEAHORSE_EMOJI's rows, by name -> an `add_tokens` init.

    - "random (std 0.02)" and "mean of all rows": the generic rules;
    - "sea + horse + emoji dir.": the meaning spelled out. The emoji direction is the
      mean of the emoji rows minus the mean of the word rows: what turns a thing into
      its emoji. Added to half of `sea` plus half of `horse`;
    - "HORSE + FISH emoji": the two emojis the model already reaches for.
    The lesson compares them.
    """
    emojis = emoji_tokens()
    words = [w for w in tokenizer.words if w not in emojis]
    combo = {e: 1 / len(emojis) for e in emojis}  # mean of the emoji rows ...
    for w in words:  # ... minus the mean of the word rows
        combo[w] = -1 / len(words)
    combo["sea"] += 0.5
    combo["horse"] += 0.5
    return {
        "random (std 0.02)": "random",
        "mean of all rows": "mean",
        "sea + horse + emoji dir.": combo,
        "HORSE + FISH emoji": {"HORSE_EMOJI": 0.5, "FISH_EMOJI": 0.5},
    }


def trained_model(steps: int, seed: int = 0) -> tuple[Params, Config, WordTokenizer]:
    """The toy language model trained for `steps` steps -> (params, config, tokenizer).

    Trained once with `minitf.train.train`, then loaded from `minitf.course.cache_dir()`
    (like `course.trained_model`), so re-running the lesson does not train again.
    """
    from minitf.course import cached_params  # lessons only
    from minitf.train import train

    tokenizer = vocabulary()  # rebuilt each time, so the cached checkpoint stores none
    config = model_config(tokenizer)

    def fit() -> Params:
        return train(config, ToyLanguage(tokenizer), steps=steps, seed=seed, progress=False,
                     **TRAIN).params  # fmt: skip

    params = cached_params(f"seahorse-language-steps{steps}-seed{seed}", config, steps, fit)
    return params, config, tokenizer
