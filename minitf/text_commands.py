"""The text half of the `minitf` command: `train text`, `demo text`, and text checkpoints
in `eval` and `sample` (minitf/cli.py calls these; `lens` needs nothing special).

    minitf train text [--corpus FILE] [--tokenizer bpe|char] [--vocab-size N] [--seq-len T]
    minitf demo text          the default 6-block model on Python's own docs, start to end

Defaults come from `minitf.text.TEXT_DEFAULTS`, per tokenizer; the flags override them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
import unicodedata
from pathlib import Path

import jax
import numpy as np
from tqdm.auto import tqdm

from minitf import interrupts
from minitf.checkpoint import Checkpoint, write_json
from minitf.interrupts import Interrupted
from minitf.memory import count_params_of
from minitf.model import Config, Params
from minitf.text import (
    DEMO_PROMPT,
    EVAL_SEED,
    SAMPLE_TEMPERATURE,
    TEXT_DEFAULTS,
    TextScore,
    TextTask,
    continue_text,
    score_windows,
    text_task,
    token_byte_lengths,
    validation_windows,
)
from minitf.tokens import TokenizerLike, hex_bytes
from minitf.train import TrainConfig, interrupted_message, train

TEXT_FLAGS = ("corpus", "tokenizer", "vocab_size", "seq_len")  # flags of `train text` only
FINAL_EVAL_N = 2000  # validation windows for the report at the end (and `minitf eval`)
DEMO_SENTENCE = "The for statement is used to iterate over the elements of a sequence."
DEMO_TEMPERATURES = (0.5, 1.0, 1.5)
DEMO_NEIGHBOURS = (" def", "3", " True", " list", " import", " The")  # those that are tokens


def add_text_flags(p: argparse.ArgumentParser) -> None:
    """The flags that only `minitf train text` takes."""
    p.add_argument("--corpus", type=Path, metavar="FILE",
                   help="text: a UTF-8 file to train on (default: Python's own documentation)")
    p.add_argument("--tokenizer", choices=["bpe", "char"],
                   help="text: byte-level BPE (default) or one token per character")
    p.add_argument("--vocab-size", type=int, metavar="N",
                   help="text, bpe: tokens in all, 256 bytes + merges (1024)")
    p.add_argument("--seq-len", type=int, metavar="T",
                   help="text: tokens the model reads per window, its context (64)")  # fmt: skip


def refuse_text_flags(args: argparse.Namespace) -> None:
    """A toy task was asked for: text flags make no sense there."""
    for name in TEXT_FLAGS:
        if getattr(args, name, None) is not None:
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{flag} applies to `minitf train text` only; leave it out for "
                             f"task {args.task}")  # fmt: skip


# --- train text -------------------------------------------------------------------------


def build(args: argparse.Namespace, model_flags: tuple[str, ...], run_flags: tuple[str, ...],
          ) -> tuple[TextTask, Config, TrainConfig]:  # fmt: skip
    """The task, model and settings of a text run: the tokenizer's defaults, then the flags."""
    kind = getattr(args, "tokenizer", None) or "bpe"
    model, context, defaults = TEXT_DEFAULTS[kind]
    seq_len = getattr(args, "seq_len", None)
    task = text_task(getattr(args, "corpus", None), tokenizer=kind,
                     vocab_size=getattr(args, "vocab_size", None),
                     context=context if seq_len is None else seq_len,
                     progress=not args.no_progress)  # fmt: skip
    model = {**model, **{k: getattr(args, k) for k in model_flags if getattr(args, k) is not None}}
    given = {k: getattr(args, k) for k in run_flags if getattr(args, k) is not None}
    return task, task.config(**model), dataclasses.replace(defaults, **given)


def describe_run(task: TextTask, config: Config, settings: TrainConfig) -> None:
    corpus = task.spec["corpus"]
    print(f"corpus {corpus['name']}: {corpus['n_bytes'] / 1e6:.2f} MB, {corpus['source']}")
    if task.corpus_note:
        print(f"note: {task.corpus_note}")
    kind = "byte-level BPE" if task.spec["tokenizer"] == "bpe" else "characters"
    print(f"tokens: {kind}, vocabulary {task.tokenizer.vocab_size}; {len(task.train_ids):,} "
          f"training and {len(task.val_ids):,} validation tokens (the last "
          f"{task.spec['val_fraction']:.0%} of the text)")  # fmt: skip
    model = {k: getattr(config, k) for k in ("n_layer", "n_head", "d_model", "d_mlp")}
    print(f"model {model} ({count_params_of(config):,} parameters), context {task.context} "
          f"tokens; {settings.steps} steps of {settings.batch_size} windows, "
          f"lr {settings.lr}")  # fmt: skip


def train_and_report(args: argparse.Namespace, task: TextTask, config: Config,
                     settings: TrainConfig, *, resume: bool = False,
                     callback=None) -> dict:  # fmt: skip
    """Train, score the result on the validation text, write metrics.json; -> the report."""
    result = train(config, task, settings, out=args.out, resume=resume,
                   overwrite=args.overwrite, progress=not args.no_progress,
                   callback=callback)  # fmt: skip
    if result.interrupted:
        raise Interrupted(interrupted_message(result))
    if interrupts.requested():  # Ctrl-C came as the last step finished
        raise Interrupted(f"interrupted after training finished; the checkpoint is in "
                          f"{result.checkpoint}")  # fmt: skip
    score = task.score(result.params, config, n=FINAL_EVAL_N)
    print(f"validation loss {score.val_loss:.3f} nats per token, {score.bits_per_byte:.3f} bits "
          f"per byte, on {score.n_tokens:,} validation tokens (trained in "
          f"{result.seconds:.1f} s)")  # fmt: skip
    report = {"task": task.name, **score.to_dict(), "train_seconds": result.seconds}
    if args.out is not None:
        metrics_path = args.out / "metrics.json"
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
        write_json(metrics_path, {**metrics, **report})
        print(f"wrote {args.out}/: checkpoint/, metrics.json, loss.png")
    return {**report, "params": result.params, "history": result.history}


def run_train_text(args: argparse.Namespace, model_flags: tuple[str, ...],
                   run_flags: tuple[str, ...]) -> int:  # fmt: skip
    task, config, settings = build(args, model_flags, run_flags)
    describe_run(task, config, settings)
    train_and_report(args, task, config, settings, resume=args.resume)
    return 0


# --- eval and sample on a text checkpoint -------------------------------------------------


def checkpoint_score(ckpt: Checkpoint, n: int, seed: int | None) -> TextScore:
    """A text checkpoint on `n` validation windows of its own validation text."""
    if "validation" not in ckpt.data or ckpt.tokenizer is None:
        raise ValueError("this text model has no validation tokens (data.npz) or no "
                         "tokenizer to score it with (a folder from `minitf export` keeps "
                         "neither): evaluate the `minitf train text` run it came from")
    windows = validation_windows(ckpt.data["validation"], ckpt.config.max_len, n,
                                 EVAL_SEED if seed is None else seed)  # fmt: skip
    return score_windows(ckpt.params, ckpt.config, windows, token_byte_lengths(ckpt.tokenizer))


def run_eval_text(ckpt: Checkpoint, args: argparse.Namespace) -> int:
    score = checkpoint_score(ckpt, args.n, args.seed)
    if args.json:
        print(json.dumps({"task": "text", "val_loss": score.val_loss,
                          "bits_per_byte": score.bits_per_byte, "n_tokens": score.n_tokens}))
    else:
        corpus = ckpt.task.get("corpus", {}).get("name", "?")
        print(f"text ({corpus}): validation loss {score.val_loss:.4f} nats per token, "
              f"{score.bits_per_byte:.4f} bits per byte on {score.n_tokens:,} tokens")  # fmt: skip
    return 0


def run_sample_text(ckpt: Checkpoint, args: argparse.Namespace) -> int:
    n_new = 200 if args.max_new_tokens is None else args.max_new_tokens
    temperature = SAMPLE_TEMPERATURE if args.temperature is None else args.temperature
    print(continue_text(ckpt.params, ckpt.config, ckpt.tokenizer, args.prompt, n_new,
                        temperature=temperature, top_k=args.top_k, top_p=args.top_p,
                        seed=args.seed))  # fmt: skip
    return 0


# --- demo text ------------------------------------------------------------------------------


def run_demo_text(args: argparse.Namespace, model_flags: tuple[str, ...],
                  run_flags: tuple[str, ...]) -> int:  # fmt: skip
    """Train the default text model from scratch and show what it learned."""
    from minitf.model import init_params

    if args.eval_every == 0:
        raise ValueError("--eval-every must be a positive number of steps for demo text: it "
                         "shows the model's samples and validation loss every N steps")
    start = time.perf_counter()
    print("minitf demo text: a 6-block language model trained from scratch on Python's own "
          "documentation")  # fmt: skip
    task, config, settings = build(args, model_flags, run_flags)
    if args.eval_every is None:
        settings = dataclasses.replace(settings, eval_every=max(1, settings.steps // 4))
    describe_run(task, config, settings)
    snapshots: dict[int, tuple[float | None, str]] = {}  # step -> (val loss, sample)

    def sample_as_it_trains(step: int, params: Params) -> None:
        if step == 0 or step % settings.eval_every == 0 or step == settings.steps:
            val = task.evaluate(params, config, n=settings.eval_n) if step == 0 else None
            text = continue_text(params, config, task.tokenizer, DEMO_PROMPT, 40, seed=args.seed)
            snapshots[step] = (val, text)

    got = train_and_report(args, task, config, settings, callback=sample_as_it_trains)
    params, history = got["params"], got["history"]
    val_at = dict(zip(history["eval_step"], history["val_loss"], strict=True))
    print(f"\nthe same prompt as training went on (temperature {SAMPLE_TEMPERATURE}, seed "
          f"{args.seed}):")  # fmt: skip
    for step, (val, text) in sorted(snapshots.items()):
        val = val_at.get(step, val)
        print(f"  step {step:>5} (val loss {val:.2f}): {_one_line(text)}")
    print("\nthe trained model at three temperatures:")
    for t in DEMO_TEMPERATURES:
        text = continue_text(params, config, task.tokenizer, DEMO_PROMPT, 60, temperature=t,
                             seed=args.seed)  # fmt: skip
        print(f"  T = {t}: {_one_line(text)}")
    untrained = jax.jit(init_params, static_argnums=0)(config, jax.random.key(settings.seed))
    _print_neighbours(task, np.asarray(untrained["embed"]), np.asarray(params["embed"]))
    lens, position = _demo_lens(params, config, task.tokenizer)
    print(f"\nlogit lens on {DEMO_SENTENCE!r}, at the position whose prediction (the real "
          "next token) first reaches the top nearest the middle of the stack:")  # fmt: skip
    print(lens.table(position=position, k=3))
    _demo_figures(args.out, task, lens, np.asarray(untrained["embed"]),
                  np.asarray(params["embed"]))  # fmt: skip
    page = _demo_page(args.out, params, config, task)
    print(f"wrote {page}: open it in your browser to explore the model (works offline)")
    print(f"\ndone in {time.perf_counter() - start:.0f} s")
    return 0


def _one_line(text: str, width: int = 110) -> str:
    """A sample on one line: newlines as ⏎, other line breaks and control characters as
    their bytes (`<0x1C>`), so a terminal shows what the model wrote."""
    flat = "".join("⏎" if ch == "\n" else ch if ch in " \t" or not _breaks_or_controls(ch)
                   else hex_bytes(ch.encode("utf-8")) for ch in text)  # fmt: skip
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _breaks_or_controls(ch: str) -> bool:
    return unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"}


def _print_neighbours(task: TextTask, before: np.ndarray, after: np.ndarray) -> None:
    from minitf.token_groups import group_similarity, nearest_by_cosine, token_groups

    tok = task.tokenizer
    among = task.frequent_tokens()
    print("\nnearest tokens in embedding space (cosine; among tokens seen 20+ times in training):")
    for word in DEMO_NEIGHBOURS:
        ids = tok.encode(word)
        if len(ids) != 1 or ids[0] not in set(among.tolist()):
            continue
        for name, matrix in (("before", before), ("after", after)):
            near = nearest_by_cosine(matrix, ids[0], 5, among)
            shown = "  ".join(f"{tok.display(i)} {c:.2f}" for i, c in near)
            print(f"  {tok.display(ids[0]):>8} {name:>6} training: {shown}")
    groups = token_groups(tok, among)
    print("mean cosine inside groups of related tokens vs random pairs, before -> after:")
    for name, ids in groups.items():
        b = group_similarity(before, {name: ids}, among)[name]
        a = group_similarity(after, {name: ids}, among)[name]
        print(f"  {name:<18} ({len(ids):>2} tokens) {b.within:+.2f} -> {a.within:+.2f}   "
              f"random pairs {b.random:+.2f} -> {a.random:+.2f}")  # fmt: skip


def middle_position(lens, config: Config, tokens: list[int]) -> int:
    """The position whose final top-1 token is the real next token and first reaches the
    top in the layer nearest the middle of the stack (ties: the most confident)."""
    best, best_key = len(tokens) - 2, None
    for p in range(len(tokens) - 1):
        final = int(np.argmax(lens.log_probs[-1, p]))
        if final != tokens[p + 1]:
            continue
        first = lens.first_top1_layer(final, p)
        key = (abs(first - config.n_layer / 2), -float(lens.log_probs[-1, p].max()))
        if best_key is None or key < best_key:
            best, best_key = p, key
    return best


def _demo_lens(params: Params, config: Config, tokenizer: TokenizerLike):
    from minitf.lens import logit_lens

    ids = tokenizer.encode(DEMO_SENTENCE)[: config.max_len]
    lens = logit_lens(params, config, ids, tokenizer=tokenizer)
    return lens, middle_position(lens, config, ids)


def _demo_page(out: Path, params: Params, config: Config, task: TextTask) -> Path:
    """The demo's explore.html on two lines of validation text (no tuned lens: one fitted
    on text would take longer than the page; `minitf explore` draws the same page)."""
    from minitf.explore.data import default_inputs
    from minitf.explore.page import write_page

    spec = {"name": task.name, **task.spec}
    inputs = default_inputs(spec, tokenizer=task.tokenizer, validation=task.val_ids,
                            max_len=config.max_len)  # fmt: skip
    return write_page(out / "explore.html", params, config, task.tokenizer, inputs, task=spec,
                      hint=f"Type your own inputs: minitf explore {out} --serve")  # fmt: skip


def _demo_figures(out: Path, task: TextTask, lens, before: np.ndarray, after: np.ndarray) -> None:
    import matplotlib.pyplot as plt

    from minitf.plots import plot_embeddings_pca
    from minitf.token_groups import token_groups

    groups = token_groups(task.tokenizer, task.frequent_tokens())
    ids = [i for members in groups.values() for i in members[:8]]
    labels = [task.tokenizer.display(i) for i in ids]
    kinds = [name for name, members in groups.items() for _ in members[:8]]
    figures = {
        "lens_heatmap.png": lambda path: lens.plot(path),
        "embeddings.png": lambda path: plot_embeddings_pca(
            {"untrained": before[ids], "trained": after[ids]}, labels, path, groups=kinds,
            title="Embeddings of related tokens (2-D PCA): scattered at random before "
            "training, grouped after it"),
    }  # fmt: skip
    for name, draw in figures.items():
        plt.close(draw(out / name))
    tqdm.write(f"wrote {out}/: {', '.join(figures)}")
