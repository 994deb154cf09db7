"""Do related tokens get related vectors? Groups of tokens, nearest neighbours, and a score.

Training never sees a rule that says "int and str are both type names". If their
embedding rows end up closer to each other than to random tokens, training put that
there, because the tokens are used in similar contexts. To measure it without fooling
ourselves:

- `token_groups` finds, in a vocabulary, tokens that a person would call related:
  digits, Python keywords, built-in type names, sentence punctuation, capitalised words.
  Words count in their form with a leading space (" def"), as BPE learns a word inside
  running text; the bare form ("int") is more often a piece of a longer word ("print").
  Digits and punctuation count as themselves.
- `group_similarity` compares the mean cosine similarity of pairs inside each group with
  that of random pairs of tokens, and the share of group tokens whose nearest neighbour
  is in their own group with the share chance would give. Only tokens common enough to
  have been trained are compared (`among`): a row whose token never occurs keeps its
  random start.

Random vectors in D dimensions have cosine about 0 +- 1/sqrt(D), so before training
every group looks like random pairs. The lessons "Embeddings" and "A language model
from text" measure the change. Left out: analogies (king - man + woman), which need far
bigger models and corpora.
"""

from __future__ import annotations

import dataclasses
import keyword
import re
import string

import numpy as np

from minitf.tokens import TokenizerLike

TYPE_NAMES = ("int", "str", "float", "list", "dict", "tuple", "set", "bytes", "bool", "object",
              "complex", "frozenset", "bytearray", "type")  # fmt: skip
PUNCTUATION = (".", ",", ":", ";", "!", "?")
CAPITALISED = re.compile(r"[A-Z][a-z]{2,}")  # "The", "Return": a capital, then lower case


@dataclasses.dataclass(frozen=True)
class GroupScore:
    """How alike a group's vectors are, against random pairs of tokens."""

    within: float  # mean cosine similarity of the group's pairs
    random: float  # mean cosine of random pairs of tokens (the same tokens to draw from)
    random_sd: float  # spread of that mean over repeated draws of as many pairs
    neighbour_in_group: float  # share of the group whose nearest neighbour is in the group
    chance: float  # that share if neighbours were random

    @property
    def z(self) -> float:
        """(within - random) in units of the random mean's spread."""
        return (self.within - self.random) / max(self.random_sd, 1e-12)


def token_groups(tokenizer: TokenizerLike, among: np.ndarray | None = None,
                 min_size: int = 4) -> dict[str, list[int]]:  # fmt: skip
    """Groups of related tokens that exist in the vocabulary -> {group name: [ids]}.

    `among`: only these ids may be used (e.g. tokens frequent in the training text).
    Groups with fewer than `min_size` tokens are left out.
    """
    allowed = set(range(tokenizer.vocab_size) if among is None else np.asarray(among).tolist())
    texts = {_text(tokenizer, i): i for i in sorted(allowed)}

    def spaced(words) -> list[int]:
        return [texts[" " + word] for word in words if " " + word in texts]

    def bare(symbols) -> list[int]:
        return [texts[s] for s in symbols if s in texts]

    capitalised = sorted(t[1:] for t in texts if t[:1] == " " and CAPITALISED.fullmatch(t[1:]))
    groups = {
        "digits": bare(string.digits),
        "Python keywords": spaced(k for k in keyword.kwlist if k not in ("True", "False", "None")),
        "built-in types": spaced(TYPE_NAMES),
        "punctuation": bare(PUNCTUATION),
        "capitalised words": spaced(capitalised),
    }
    return {name: ids for name, ids in groups.items() if len(ids) >= min_size}


def _text(tokenizer: TokenizerLike, i: int) -> str:
    """The text a token stands for ("" for bytes that aren't whole characters)."""
    if hasattr(tokenizer, "token_bytes"):
        try:
            return tokenizer.token_bytes(i).decode("utf-8")
        except UnicodeDecodeError:
            return ""
    return tokenizer.decode([i])


def unit_rows(matrix) -> np.ndarray:
    """Each row scaled to length 1 (so dot products are cosines). [N, D] -> [N, D]"""
    matrix = np.asarray(matrix, dtype=np.float64)
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)


def nearest_by_cosine(matrix, token_id: int, k: int = 5,
                      among: np.ndarray | None = None) -> list[tuple[int, float]]:  # fmt: skip
    """The k rows most like row `token_id` in direction (itself left out) -> [(id, cosine)].

    `among`: only these ids are candidates. [V, D] matrix, e.g. `params["embed"]`.
    """
    unit = unit_rows(matrix)  # (V, D)
    candidates = np.arange(len(unit)) if among is None else np.asarray(among)
    candidates = candidates[candidates != token_id]
    cosines = unit[candidates] @ unit[token_id]  # (n,)
    best = np.argsort(-cosines, kind="stable")[:k]
    return [(int(candidates[j]), float(cosines[j])) for j in best]


def group_similarity(matrix, groups: dict[str, list[int]], among: np.ndarray, *,
                     seed: int = 0, n_draws: int = 200) -> dict[str, GroupScore]:  # fmt: skip
    """Each group's mean pairwise cosine against random pairs from `among`, and how
    often a group token's nearest neighbour (among `among`) is in its group.

    The random baseline draws, `n_draws` times, as many random pairs as the group has;
    its mean and spread say what "as alike as random tokens" looks like.
    """
    unit = unit_rows(matrix)  # (V, D)
    among = np.asarray(among)
    cos_among = unit[among] @ unit[among].T  # (n, n)
    np.fill_diagonal(cos_among, -np.inf)  # a token is not its own neighbour
    nearest = among[cos_among.argmax(axis=1)]  # (n,): each token's nearest neighbour
    nearest_of = dict(zip(among.tolist(), nearest.tolist(), strict=True))
    rng = np.random.default_rng(seed)
    scores = {}
    for name, ids in groups.items():
        ids = np.asarray(ids)
        pairs = np.triu_indices(len(ids), k=1)
        within = float((unit[ids] @ unit[ids].T)[pairs].mean())
        a = rng.choice(among, (n_draws, len(pairs[0])))  # (n_draws, n_pairs)
        b = rng.choice(among, (n_draws, len(pairs[0])))
        keep = a != b
        draws = np.where(keep, np.einsum("ijd,ijd->ij", unit[a], unit[b]), np.nan)  # (n_draws, n)
        means = np.nanmean(draws, axis=1)  # (n_draws,)
        in_group = np.mean([nearest_of[i] in set(ids.tolist()) for i in ids.tolist()])
        scores[name] = GroupScore(within, float(means.mean()), float(means.std()),
                                  float(in_group), (len(ids) - 1) / (len(among) - 1))  # fmt: skip
    return scores
