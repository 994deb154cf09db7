"""The numbers the explore page shows, computed from a model with the public library.

One input becomes one JSON-ready dict (`analyze`): its tokens, the logit lens (and the
tuned lens, where there is one) as the top 5 tokens per layer and position with their
probabilities, the rank of the model's final prediction and the KL to the final layer,
every attention pattern, and the direct logit attribution of the likeliest tokens at
every position. `vocabulary` adds the embedding map: the lessons' 2-D PCA of the
embedding matrix, with each token's nearest neighbours. `page_data` puts it together.

Nothing is recomputed in the browser: the page only draws these numbers, so what it
shows is exactly what `minitf.lens.logit_lens` and friends say in Python. Left out:
anything the page could not show for a model you trained yourself (MLP neurons, SAEs).

Shape letters as in `minitf.model`: L n_layer, H heads, T sequence, V vocab size.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from minitf.attribution import direct_logit_attribution
from minitf.lens import LensResult, layer_names, logit_lens
from minitf.model import Config, Params, forward
from minitf.plots import pca_2d
from minitf.tasks import TASKS, Task, make_task
from minitf.tokens import display_token
from minitf.tuned_lens import TunedLens, train_tuned_lens, tuned_lens

TOP_K = 5  # tokens listed per lens cell, and the likeliest tokens given an attribution
NEIGHBOURS = 5  # nearest tokens listed on the embedding map
MAP_LIMIT = 2000  # most tokens drawn on the embedding map (a GPT-2 has 50257)
N_DEFAULT = 4  # test problems on a toy task's page
COLORMAP = "viridis"  # perceptually uniform and readable to colour-blind viewers
FORMAT = "minitf-explore-1"  # the page's data format, checked by the page's script


# --- inputs ------------------------------------------------------------------------------


def toy_task(task: Task | dict | None) -> Task | None:
    """The toy task of a checkpoint (its spec, `Checkpoint.task`, or the Task), or None."""
    if isinstance(task, Task):
        return task
    if not task or task.get("name") not in TASKS:
        return None
    return make_task(**task)


def is_text_model(task: Task | dict | None) -> bool:
    """Does the checkpoint record a language model (`minitf train text`)?"""
    return isinstance(task, dict) and task.get("name") == "text"


def default_inputs(task_spec: Task | dict | None, n: int = N_DEFAULT, *, tokenizer: Any = None,
                   validation: np.ndarray | None = None,
                   max_len: int | None = None) -> list[str]:  # fmt: skip
    """The inputs a page shows when none are given: a toy task's test prompts (the
    page adds the model's answers); for a language model, sentences of its validation
    text (`validation`: its token ids, as a text checkpoint keeps them) or, without
    them, the prompt its samples start from. Any other model needs --text."""
    if is_text_model(task_spec):
        if validation is not None and tokenizer is not None and len(validation):
            return validation_sentences(tokenizer, validation, max_len or 64)
        from minitf.text import DEMO_PROMPT

        return [DEMO_PROMPT]
    task = toy_task(task_spec)
    if task is None:
        raise ValueError(
            "this model has no toy task to draw example inputs from; give some with "
            "--text TEXT (e.g. --text 'The sea' --text 'Once upon')"
        )
    prompts, _ = task.problems(np.random.default_rng(0), n, "test")  # (n, P)
    return [task.tokenizer.decode(p) for p in prompts]


def validation_sentences(tokenizer: Any, ids: np.ndarray, max_len: int, n: int = 2,
                         n_tokens: int = 100_000) -> list[str]:  # fmt: skip
    """`n` lines of validation text that read like prose (a capital letter first, words,
    a full stop), evenly spaced through its first `n_tokens` tokens, each cut at a word to
    fit `max_len` tokens. Lines of any kind, or the text itself, where there are none."""
    text = tokenizer.decode([int(i) for i in ids[:n_tokens]])
    lines = [line.strip() for line in text.splitlines()][1:]  # the first may start mid-line
    prose = [line for line in lines if len(line) >= 30 and line[0].isupper()
             and line.endswith(".") and " " in line]  # fmt: skip
    pool = prose or [line for line in lines if len(line.split()) >= 3] or [text.strip()]
    picked = [pool[i] for i in np.linspace(0, len(pool) - 1, min(n, len(pool))).astype(int)]
    return [_fit(tokenizer, line, max_len) for line in dict.fromkeys(picked)]


def _fit(tokenizer: Any, line: str, max_len: int) -> str:
    """`line`, cut after a whole word, so that it encodes to at most `max_len` tokens."""
    words = line.split(" ")
    while len(words) > 1 and len(tokenizer.encode(" ".join(words))) > max_len:
        words = words[: max(1, len(words) * 3 // 4)]
    fitted = " ".join(words)
    while len(tokenizer.encode(fitted)) > max_len:  # one long word: cut characters
        fitted = fitted[: len(fitted) * 3 // 4]
    return fitted


def _prompt_pattern(task: Task) -> tuple[dict[int, int], set[int]]:
    """What every prompt of a task shares: {position: its fixed token} ('+', '='), and
    the tokens the other positions use (digits). From 256 drawn prompts."""
    prompts = task.draw(np.random.default_rng(0), 256)  # (256, P)
    fixed = {t: int(prompts[0, t]) for t in range(prompts.shape[1])
             if (prompts[:, t] == prompts[0, t]).all()}  # fmt: skip
    free = [t for t in range(prompts.shape[1]) if t not in fixed]
    return fixed, {int(i) for i in np.unique(prompts[:, free])}


def is_prompt(task: Task, ids: list[int]) -> bool:
    """Is `ids` a well-formed prompt of `task` (right length, symbols where they go)?"""
    if len(ids) != task.prompt_len:
        return False
    fixed, free = _prompt_pattern(task)
    return all(ids[t] == fixed[t] if t in fixed else ids[t] in free for t in range(len(ids)))


def encode_input(
    params: Params, config: Config, tokenizer: Any, text: str, task: Task | None = None
) -> tuple[list[int], str | None]:
    """Text -> the token ids to look at, and a note for the page.

    A whole toy-task prompt ('123+045=') is completed with the model's greedy answer,
    so the page shows the answer forming; anything else is read as typed. Bad input
    is a ValueError of one sentence that says how to fix it.
    """
    if tokenizer is None:
        raise ValueError("this model has no tokenizer, so text can't be turned into tokens")
    if not text:
        raise ValueError("the input is empty; type at least one character")
    ids = [int(i) for i in tokenizer.encode(text)]  # unknown characters: a ValueError
    if not ids:
        raise ValueError(f"{text!r} encodes to no tokens; type something else")
    if len(ids) > config.max_len:
        raise ValueError(
            f"the input is {len(ids)} tokens but this model reads at most "
            f"max_len={config.max_len}; shorten it"
        )
    if task is None or not is_prompt(task, ids):
        return ids, None
    answer = task.predict(params, config, np.array([ids]))[0]  # (A,)
    right = task.solve(np.array([ids]))[0]  # (A,)
    decode = task.tokenizer.decode
    mark = "✓" if np.array_equal(answer, right) else f"✗ (right: {decode(right)})"
    return ids + [int(i) for i in answer], f"the model's answer: {decode(answer)} {mark}"


# --- one input -----------------------------------------------------------------------------


def _exact(x) -> list:
    """A float32 array as nested lists of Python floats holding exactly its values, so the
    page rounds the very numbers Python has (rounding twice could differ in the last digit)."""
    return np.asarray(x, dtype=np.float32).astype(np.float64).tolist()


def _rounded(x, digits: int) -> list:
    """Nested lists of rounded floats, for what the page only draws (map positions)."""
    return np.round(np.asarray(x, dtype=np.float64), digits).tolist()


def lens_view(result: LensResult) -> dict:
    """One lens on one input: per layer l and position t the top tokens and their
    probabilities, the rank of the model's final top token, and KL(final || layer)."""
    n_rows, T, V = result.log_probs.shape  # L+1, T, V
    k = min(TOP_K, V)
    tops = [result.top_k(k, t) for t in range(T)]  # T x ((L+1, k) ids, (L+1, k) probs)
    top_ids = np.stack([ids for ids, _ in tops], axis=1)  # (L+1, T, k)
    top_probs = np.stack([probs for _, probs in tops], axis=1)  # (L+1, T, k)
    final = top_ids[-1, :, 0]  # (T,): the model's own prediction at each position
    rank = np.stack([result.rank(final[t], t) for t in range(T)], axis=1)  # (L+1, T)
    return {
        "name": result.name,
        "top_ids": top_ids.tolist(),
        "top_probs": _exact(top_probs),
        "final": final.tolist(),
        "rank": rank.tolist(),
        "kl": _exact(np.maximum(result.kl_to_final(), 0.0)),  # (L+1, T); -0.0 -> 0
    }


@functools.partial(jax.jit, static_argnames="config")
def attention_patterns(params: Params, tokens: jax.Array, config: Config) -> jax.Array:
    """Every head's pattern for one sequence: [T] int -> [L, H, T, T] (rows sum to 1)."""
    _, acts = forward(params, tokens[None], config, cache=True)
    return jnp.stack([acts[f"blocks.{l}.attn_pattern"][0] for l in range(config.n_layer)])


def attention_view(params: Params, config: Config, ids: list[int]) -> list:
    """[layer][head][query t] -> the weights on keys 0..t (the causal part only)."""
    patterns = np.asarray(attention_patterns(params, jnp.asarray(ids), config))  # (L, H, T, T)
    T = len(ids)
    return [[[_exact(head[t, : t + 1]) for t in range(T)] for head in layer]
            for layer in patterns]  # fmt: skip


def attribution_view(
    params: Params, config: Config, ids: list[int], final_top: np.ndarray
) -> tuple[list[str], list[list[dict]]]:
    """Per position, the direct logit attribution of each candidate token: the model's
    likeliest tokens there (`final_top` (T, k), best first) and the token that really
    comes next. -> component labels, [position][candidate] {"id", "values", "logit"}."""
    views, labels = [], []
    for t in range(len(ids)):
        candidates = [int(i) for i in final_top[t]]
        if t + 1 < len(ids) and ids[t + 1] not in candidates:
            candidates.append(ids[t + 1])
        row = []
        for token_id in candidates:
            got = direct_logit_attribution(params, config, ids, token_id, t)
            labels = got.labels
            row.append({"id": token_id, "values": _exact(got.values),
                        "logit": got.logit})  # fmt: skip
        views.append(row)
    return labels, views


def analyze(
    params: Params,
    config: Config,
    tokenizer: Any,
    text: str,
    *,
    task: Task | None = None,
    tuned: TunedLens | None = None,
) -> dict:
    """Everything the page shows about one input, JSON-ready (see the module docstring)."""
    ids, note = encode_input(params, config, tokenizer, text, task)
    logit = logit_lens(params, config, ids, tokenizer=tokenizer)
    lenses = {"logit": lens_view(logit)}
    if tuned is not None:
        lenses["tuned"] = lens_view(tuned_lens(params, config, ids, tuned, tokenizer=tokenizer))
    final_top = np.asarray(lenses["logit"]["top_ids"][-1])  # (T, k): the model's own top k
    components, attribution = attribution_view(params, config, ids, final_top)
    analysis = {
        "text": text,
        "shown": tokenizer.decode(ids),
        "note": note,
        "ids": ids,
        "prompt_len": task.prompt_len if note is not None else None,
        "lens": lenses,
        "attention": attention_view(params, config, ids),
        "components": components,  # attribution labels: 'embed', '0.attn.h1', '0.mlp', ...
        "attribution": attribution,
    }
    analysis["tokens"] = token_labels(tokenizer, _ids_in(analysis))
    return analysis


def _ids_in(analysis: dict) -> set[int]:
    """Every token id an analysis mentions, so the page can show each one."""
    found = set(analysis["ids"])
    for lens in analysis["lens"].values():
        found.update(np.asarray(lens["top_ids"]).ravel().tolist())
    for row in analysis["attribution"]:
        found.update(c["id"] for c in row)
    return found


def token_labels(tokenizer: Any, ids) -> dict[str, str]:
    """{id: the token as the lens tables show it ('␣the', '<0xF0>')}, ids as JSON keys.
    Rows the tokenizer has no token for (a vocabulary padded to a round size) show '[id]'."""
    known = tokenizer.vocab_size if tokenizer is not None else 0
    return {str(i): display_token(tokenizer if i < known else None, i) for i in sorted(set(ids))}


# --- the vocabulary ------------------------------------------------------------------------


def vocabulary(params: Params, config: Config, tokenizer: Any, focus=()) -> dict:
    """The embedding map: the lessons' 2-D PCA of the token embeddings, and each shown
    token's nearest neighbours by cosine similarity in the full d_model space.

    A vocabulary over MAP_LIMIT tokens shows the `focus` ids (the inputs' tokens) first,
    then the lowest ids from 256 on (whole words of a BPE), then the rest.
    """
    n = config.vocab_size if tokenizer is None else min(tokenizer.vocab_size, config.vocab_size)
    embed = np.asarray(params["embed"], dtype=np.float64)[:n]  # (V, D)
    coords, explained = pca_2d(embed)  # (V, 2), (2,)
    order = list(dict.fromkeys([*(i for i in focus if i < n), *range(256, n), *range(min(256, n))]))
    shown = np.array(sorted(order[:MAP_LIMIT]))  # (S,)
    unit = embed / np.maximum(np.linalg.norm(embed, axis=1, keepdims=True), 1e-12)  # (V, D)
    cosine = unit[shown] @ unit.T  # (S, V)
    cosine[np.arange(len(shown)), shown] = -np.inf  # a token is not its own neighbour
    k = min(NEIGHBOURS, n - 1)
    near = np.argsort(-cosine, axis=1, kind="stable")[:, :k]  # (S, k)
    near_cos = np.take_along_axis(cosine, near, axis=1)  # (S, k)
    return {
        "ids": shown.tolist(),
        "xy": _rounded(coords[shown], 4),
        "explained": _rounded(explained, 4),
        "neighbours": near.tolist(),
        "neighbour_cos": _exact(near_cos),
        "total": n,
        "tokens": token_labels(tokenizer, [*shown.tolist(), *near.ravel().tolist()]),
    }


def colormap(n: int = 64) -> list[str]:
    """The colour map as n hex colours, from matplotlib (probability 0 -> 1)."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    return [to_hex(c) for c in colormaps[COLORMAP](np.linspace(0.0, 1.0, n))]


# --- the tuned lens of a checkpoint --------------------------------------------------------


def fit_tuned_lens(
    params: Params, config: Config, task: Task, *, steps: int = 300, seed: int = 0
) -> TunedLens:
    """A tuned lens for a toy-task model, fit on 512 training problems (as the lesson
    "The logit lens" does)."""
    sequences, _ = task.batch(np.random.default_rng([seed, 10**6]), 512)  # (512, T)
    tuned, _ = train_tuned_lens(params, config, sequences, steps=steps, seed=seed)
    return tuned


# --- the whole page ------------------------------------------------------------------------


def describe(config: Config, task: Task | dict | None) -> str:
    """One line about the model, for the page's title."""
    what = "model"
    if is_text_model(task):  # e.g. "language model (python-docs, bpe tokens)"
        corpus = task.get("corpus", {}).get("name", "a corpus")
        what = f"language model ({corpus}, {task.get('tokenizer', 'bpe')} tokens)"
    elif (toy := toy_task(task)) is not None:  # e.g. "addition (digits 3, reverse_answer False)"
        what = f"{toy.name} ({', '.join(f'{k} {v}' for k, v in toy.spec.items())})"
    return (f"{what}: {config.n_layer} blocks x {config.n_head} heads, d_model "
            f"{config.d_model}, vocabulary {config.vocab_size}")  # fmt: skip


def page_data(
    params: Params,
    config: Config,
    tokenizer: Any,
    inputs: list[str] | None = None,
    *,
    task: Task | dict | None = None,
    tuned: TunedLens | None = None,
    title: str | None = None,
    hint: str | None = None,
) -> dict:
    """Everything one page holds: the model, the vocabulary map and every input's analysis.

    `task` is the toy task (a Task, or its spec as checkpoints store it: {"name":
    "addition", "digits": 3, ...}): its prompts are completed with the model's answers,
    and without `inputs` the page shows a few of its test problems. A language model's
    spec ({"name": "text", ...}) gives its sample prompt instead (`default_inputs`).
    """
    if inputs is None:
        inputs = default_inputs(task, tokenizer=tokenizer, max_len=config.max_len)
    inputs = list(inputs)
    if not inputs:
        raise ValueError("give the page at least one input to show")
    about = describe(config, task)
    task = toy_task(task)
    analyses = [analyze(params, config, tokenizer, text, task=task, tuned=tuned) for text in inputs]
    focus = [i for a in analyses for i in a["ids"]]
    return {
        "format": FORMAT,
        "title": title or f"minitf explore: {about}",
        "model": {"n_layer": config.n_layer, "n_head": config.n_head,
                  "d_model": config.d_model, "vocab_size": config.vocab_size,
                  "max_len": config.max_len},  # fmt: skip
        "layers": layer_names(config.n_layer),
        "has_tuned": tuned is not None,
        "colormap": colormap(),
        "vocab": vocabulary(params, config, tokenizer, focus),
        "inputs": analyses,
        "serve": False,
        "hint": hint or "Type your own inputs: minitf explore CKPT --serve (CKPT: this "
        "model's checkpoint folder)",
    }
