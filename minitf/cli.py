"""The `minitf` command: one subcommand per job, each a thin layer over the library.

Every subcommand has `--help`, a `--seed` where anything is random, and defaults that
finish on a laptop CPU. Bad input becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from minitf.course.commands import add_course_commands
from minitf.explore.commands import add_commands as add_explore_commands

# --- minitf bpe ------------------------------------------------------------------------


def add_bpe_commands(sub: argparse._SubParsersAction) -> None:
    """`minitf bpe train|encode`: train a tokenizer on a text file, look at encodings."""
    bpe = sub.add_parser("bpe", help="train and use a byte-level BPE tokenizer")
    bpe_sub = bpe.add_subparsers(dest="bpe_command", required=True, metavar="{train,encode}")

    train = bpe_sub.add_parser(
        "train", help="learn merges from a UTF-8 text file",
        description="Train a byte-level BPE tokenizer on FILE and write it to DIR as "
        "tokenizer.bpe (minitf's format) plus vocab.json and merges.txt (GPT-2's format). "
        "Training is deterministic: ties go to the greatest pair of byte strings.",
    )
    train.add_argument("file", type=Path, metavar="FILE", help="UTF-8 text to train on")
    train.add_argument("--vocab-size", type=int, default=1024, metavar="N",
                       help="tokens in all: 256 bytes + merges + special tokens (default 1024)")
    train.add_argument("--out", type=Path, required=True, metavar="DIR",
                       help="folder to write the files to")
    train.add_argument("--pattern", default="gpt4", metavar="PATTERN",
                       help="pre-split regex: gpt2, gpt4 (default), none, or a regex of your own")
    train.add_argument("--special", nargs="+", action="extend", default=[], metavar="TOKEN",
                       help="special tokens, e.g. --special '<|endoftext|>'")
    train.set_defaults(func=_bpe_train)

    encode = bpe_sub.add_parser(
        "encode", help="show how a trained tokenizer splits TEXT",
        description="Encode TEXT with the tokenizer in DIR (tokenizer.bpe, or GPT-2's "
        "vocab.json + merges.txt) and print each token's id and printable form (Ġ is a space).",
    )
    encode.add_argument("dir", type=Path, metavar="DIR",
                        help="folder written by `minitf bpe train`, or a GPT-2 folder")
    encode.add_argument("text", metavar="TEXT", help="the text to encode")
    encode.add_argument("--allow-special", action="store_true",
                        help="recognise special tokens in TEXT (by default they are plain text)")
    encode.set_defaults(func=_bpe_encode)


def _bpe_train(args: argparse.Namespace) -> int:
    """Train, write the files, show the longest tokens and the compression."""
    import time

    from minitf.bpe import Tokenizer

    try:
        text = args.file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{args.file} is not UTF-8 text; convert it first") from None
    pattern = None if args.pattern == "none" else args.pattern
    start = time.perf_counter()
    tok = Tokenizer.train(
        text, args.vocab_size, pattern=pattern, special_tokens=args.special, progress=True
    )
    seconds = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    tok.save(args.out / "tokenizer.bpe")
    tok.save_gpt2(args.out)
    print(f"trained {tok.vocab_size} tokens on {len(text):,} characters in {seconds:.1f} s")
    print(f"wrote {args.out / 'tokenizer.bpe'}, vocab.json and merges.txt")
    longest = sorted(tok.merge_ids, key=lambda i: (-len(tok.token_bytes(i)), i))[:20]
    print("\nthe 20 longest tokens:")
    print(f"{'id':>6}  {'bytes':>5}  token")
    for i in longest:
        print(f"{i:>6}  {len(tok.token_bytes(i)):>5}  {tok.token_str(i)}")
    n_bytes, n_tokens = len(text.encode("utf-8")), len(tok.encode(text))
    print(f"\nbytes/token on the training text: {n_bytes / max(n_tokens, 1):.2f} "
          f"({n_bytes:,} bytes -> {n_tokens:,} tokens)")
    return 0


def _bpe_encode(args: argparse.Namespace) -> int:
    """Print the tokens of one text as a small table."""
    from minitf.bpe import Tokenizer

    if (args.dir / "tokenizer.bpe").is_file():
        tok = Tokenizer.load(args.dir / "tokenizer.bpe")
    elif (args.dir / "vocab.json").is_file() and (args.dir / "merges.txt").is_file():
        tok = Tokenizer.from_gpt2(args.dir)
    else:
        raise FileNotFoundError(
            f"{args.dir} has no tokenizer.bpe (nor vocab.json + merges.txt); "
            "make one with `minitf bpe train FILE --out DIR`"
        )
    ids = tok.encode(args.text, allowed_special="all" if args.allow_special else "none")
    print(f"{'pos':>4}  {'id':>6}  token")
    for pos, i in enumerate(ids):
        print(f"{pos:>4}  {i:>6}  {tok.token_str(i)}")
    print(f"{len(ids)} tokens for {len(args.text.encode('utf-8'))} bytes")
    return 0


# --- minitf demo | train | eval | sample --------------------------------------------------

# the demo: 3-digit addition, answer written most-significant digit first as people do
DEMO_TASK = {"name": "addition", "digits": 3, "reverse_answer": False}
# which task options each task takes (argparse dest -> the task's keyword)
TASK_OPTIONS = {
    "addition": {"digits": "digits", "reverse_answer": "reverse_answer"},
    "modular_addition": {"p": "p"},
    "count_letters": {"max_word_len": "max_word_len"},
    "copy": {"length": "length"},
    "reverse": {"length": "length"},
    "sort": {"length": "length"},
}
MODEL_OPTIONS = ("n_layer", "n_head", "d_model", "d_mlp")


def add_train_commands(sub: argparse._SubParsersAction) -> None:
    """`minitf demo|train|eval|sample`: train toy-task models, measure them, run them."""

    def add_run_options(p: argparse.ArgumentParser, out: str | None) -> None:
        p.add_argument("--steps", type=int, help="optimizer steps (default: per task)")
        p.add_argument("--batch-size", type=int, help="problems per step (default: per task)")
        p.add_argument("--lr", type=float, help="peak learning rate (default: per task)")
        p.add_argument("--seed", type=int, default=0, help="seed for init and batches (0)")
        p.add_argument("--out", type=Path, default=out, help=f"output folder ({out})")
        p.add_argument("--eval-n", type=int, default=2000, help="test problems at the end")
        p.add_argument("--eval-every", type=int, default=0, help="measure exact match every N")
        p.add_argument("--checkpoint-every", type=int, default=0, help="save every N steps")
        p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
        for name in MODEL_OPTIONS:
            p.add_argument(f"--{name.replace('_', '-')}", type=int, help="model size override")

    demo = sub.add_parser(
        "demo",
        help="train a 3-digit addition model from scratch (about a minute on a CPU)",
        description="Train the default 3-digit addition model, print its exact-match "
        "accuracy on 2000 fresh problems and a few answers, and write the checkpoint, "
        "metrics.json and figures to --out.",
    )
    add_run_options(demo, "minitf-demo")
    demo.set_defaults(func=_cmd_demo)

    train = sub.add_parser(
        "train",
        help="train a model on a toy task",
        description="Train a fresh model on TASK (or continue one with --resume) and "
        "report its exact-match accuracy on held-out problems.",
    )
    train.add_argument("task", choices=sorted(TASK_OPTIONS), help="the task to learn")
    train.add_argument("--digits", type=int, help="addition: digits per number (3)")
    train.add_argument("--reverse-answer", action="store_true",
                       help="addition: write the answer least-significant digit first")  # fmt: skip
    train.add_argument("--p", type=int, help="modular_addition: the modulus (97)")
    train.add_argument("--length", type=int, help="copy/reverse/sort: digits per problem (8)")
    train.add_argument("--max-word-len", type=int, help="count_letters: longest word (10)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out")
    add_run_options(train, None)
    train.set_defaults(func=_cmd_train)

    ev = sub.add_parser(
        "eval", help="exact-match accuracy of a checkpoint on fresh test problems"
    )
    ev.add_argument("checkpoint", type=Path, help="a run folder or its checkpoint/ folder")
    ev.add_argument("--n", type=int, default=2000, help="test problems (2000)")
    ev.add_argument("--seed", type=int, help="which test problems (default: tasks.EVAL_SEED)")
    ev.add_argument("--json", action="store_true", help="print one line of JSON")
    ev.set_defaults(func=_cmd_eval)

    sample = sub.add_parser("sample", help="continue a prompt with a trained model")
    sample.add_argument("checkpoint", type=Path, help="a run folder or its checkpoint/ folder")
    sample.add_argument("--prompt", required=True, help="text to continue, e.g. '123+045='")
    sample.add_argument("--max-new-tokens", type=int,
                        help="tokens to add (default: the task's answer length)")  # fmt: skip
    sample.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (0)")
    sample.add_argument("--top-k", type=int, help="sample among the k likeliest tokens")
    sample.add_argument("--top-p", type=float, help="sample from the top-p probability mass")
    sample.add_argument("--seed", type=int, default=0, help="sampling seed (0)")
    sample.set_defaults(func=_cmd_sample)


def _run(args: argparse.Namespace, task_spec: dict, *, resume: bool = False) -> dict:
    """Train with the task's defaults overridden by the command line; evaluate; report."""
    import json

    from minitf.tasks import config_for, make_task, train_defaults
    from minitf.train import check_intervals, train

    task = make_task(**task_spec)
    defaults = train_defaults(task)
    def chosen(name: str, default):  # the command line's value, else the task's default
        return default if getattr(args, name) is None else getattr(args, name)

    model = {k: chosen(k, v) for k, v in defaults["model"].items()}
    config = config_for(task, **model)
    run = {k: chosen(k, defaults[k]) for k in ("steps", "batch_size", "lr")}
    for name, value in [("--eval-n", args.eval_n), *((f"--{k}", v) for k, v in run.items())]:
        if value <= 0:
            raise ValueError(f"{name.replace('_', '-')} must be positive; got {value}")
    check_intervals({"--eval-every": args.eval_every, "--checkpoint-every": args.checkpoint_every})
    print(f"task {task.name} {task.spec}: e.g. {task.examples(_rng(1), 1)[0]}")
    print(f"model {model}, {run['steps']} steps of {run['batch_size']} problems, lr {run['lr']}")
    result = train(
        config, task, **run, seed=args.seed,
        weight_decay=defaults.get("weight_decay", 0.1),
        eval_every=args.eval_every, checkpoint_every=args.checkpoint_every,
        out=args.out, resume=resume, progress=not args.no_progress,
    )  # fmt: skip
    if result.interrupted:
        raise KeyboardInterrupt
    accuracy = task.evaluate(result.params, config, n=args.eval_n)
    print(f"exact match on {args.eval_n} held-out problems: {accuracy:.2%} "
          f"(trained in {result.seconds:.1f} s)")  # fmt: skip
    report = {"task": task.name, "exact_match": accuracy, "n": args.eval_n,
              "train_seconds": result.seconds}  # fmt: skip
    if args.out is not None:
        metrics_path = args.out / "metrics.json"
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
        metrics.update(report)
        metrics_path.write_text(json.dumps(metrics, indent=1), encoding="utf-8")
        print(f"wrote {args.out}/: checkpoint/, metrics.json, loss.png")
    return {**report, "params": result.params, "config": config, "task_obj": task}


def _rng(seed: int):
    import numpy as np

    return np.random.default_rng(seed)


def _cmd_demo(args: argparse.Namespace) -> int:
    import time

    import numpy as np

    from minitf.explore.page import write_demo_page
    from minitf.lens import logit_lens

    start = time.perf_counter()
    order = "reversed (least-significant digit first)" if DEMO_TASK["reverse_answer"] else (
        "plain (most-significant digit first)")  # fmt: skip
    print(f"minitf demo: 3-digit addition, answers written {order}")
    got = _run(args, dict(DEMO_TASK))
    task, params, config = got["task_obj"], got["params"], got["config"]
    prompts, answers = task.problems(_rng(args.seed + 7), 8, "test")
    predicted = task.predict(params, config, prompts)
    print("\nsome held-out problems (prompt -> model answer):")
    decode = task.tokenizer.decode
    for p, a, y in zip(prompts, answers, predicted, strict=True):
        mark = "✓" if np.array_equal(a, y) else f"✗ (right: {decode(a)})"
        print(f"  {decode(p)} -> {decode(y)} {mark}")
    tokens = np.concatenate([prompts[0], answers[0]])  # (T,)
    lens = logit_lens(params, config, tokens, tokenizer=task.tokenizer)
    print(f"\nlogit lens at '=' of {decode(tokens)}: what each layer would predict next")
    print(lens.table(position=task.prompt_len - 1))
    if args.out is not None:
        _demo_figures(args.out, params, config, task, tokens, lens)
        page = write_demo_page(args.out, params, config, task)
        print(f"wrote {page}: open it in your browser to explore the model (works offline)")
    print(f"\ndone in {time.perf_counter() - start:.0f} s")
    return 0


def _demo_figures(out: Path, params, config, task, tokens, lens) -> None:
    """The demo model's pictures: lens heatmap, attention per head, embedding map."""
    import jax
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from minitf.model import forward, init_params
    from minitf.plots import plot_attention, plot_embeddings_pca

    labels = [task.tokenizer.decode([int(t)]) for t in tokens]
    _, acts = forward(params, np.asarray(tokens)[None], config, cache=True)
    patterns = np.stack([acts[f"blocks.{layer}.attn_pattern"][0]
                         for layer in range(config.n_layer)])  # (L, H, T, T)
    untrained = jax.jit(init_params, static_argnums=0)(config, jax.random.key(0))
    vocab = [task.tokenizer.decode([i]) for i in range(task.tokenizer.vocab_size)]
    figures = {
        "lens_heatmap.png": lambda path: lens.plot(path),
        "attention.png": lambda path: plot_attention(patterns, labels, path),
        "embeddings.png": lambda path: plot_embeddings_pca(
            {"untrained": np.asarray(untrained["embed"])[: len(vocab)],
             "trained": np.asarray(params["embed"])[: len(vocab)]}, vocab, path),
    }  # fmt: skip
    for name, draw in figures.items():
        plt.close(draw(out / name))
    print(f"wrote {out}/: {', '.join(figures)}")


def _task_spec(args: argparse.Namespace) -> dict:
    spec = {"name": args.task}
    options = {"digits", "reverse_answer", "p", "length", "max_word_len"}
    for dest in sorted(options):
        value = getattr(args, dest)
        if value is None or value is False:
            continue
        if dest not in TASK_OPTIONS[args.task]:
            flag = "--" + dest.replace("_", "-")
            raise ValueError(f"{flag} does not apply to task {args.task}; leave it out")
        spec[TASK_OPTIONS[args.task][dest]] = value
    return spec


def _cmd_train(args: argparse.Namespace) -> int:
    if args.resume and args.out is None:
        raise ValueError("--resume needs --out DIR, the folder of the run to continue")
    _run(args, _task_spec(args), resume=args.resume)
    return 0


def _load(path: Path):
    """A run folder, its checkpoint/ folder, or a GPT-2-format folder -> Checkpoint."""
    from minitf import gpt2
    from minitf.train import CHECKPOINT_DIR, load_checkpoint

    if not (path / "config.json").exists() and (path / CHECKPOINT_DIR).is_dir():
        path = path / CHECKPOINT_DIR  # a run folder: use the checkpoint inside it
    if gpt2.is_gpt2_folder(path):
        return gpt2.load_as_checkpoint(path)
    return load_checkpoint(path)


def _cmd_eval(args: argparse.Namespace) -> int:
    import json

    from minitf.tasks import EVAL_SEED, make_task

    ckpt = _load(args.checkpoint)
    if not ckpt.task:
        raise ValueError(f"{args.checkpoint} records no task, so there is nothing to evaluate")
    task = make_task(**ckpt.task)
    seed = EVAL_SEED if args.seed is None else args.seed
    accuracy = task.evaluate(ckpt.params, ckpt.config, n=args.n, seed=seed)
    if args.json:
        print(json.dumps({"task": task.name, "exact_match": accuracy, "n": args.n}))
    else:
        print(f"{task.name} {task.spec}: exact match {accuracy:.2%} on {args.n} test problems")
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    import jax

    from minitf.sample import generate
    from minitf.tasks import make_task

    ckpt = _load(args.checkpoint)
    if ckpt.tokenizer is None:
        raise ValueError(f"{args.checkpoint} has no tokenizer, so a text prompt can't be read")
    prompt_ids = ckpt.tokenizer.encode(args.prompt)
    n_new = args.max_new_tokens
    if n_new is None:
        n_new = make_task(**ckpt.task).answer_len if ckpt.task else 20
    n_new = min(n_new, ckpt.config.max_len - len(prompt_ids))
    ids = generate(
        ckpt.params, ckpt.config, prompt_ids, n_new, temperature=args.temperature,
        top_k=args.top_k, top_p=args.top_p, key=jax.random.key(args.seed),
    )  # fmt: skip
    print(args.prompt + ckpt.tokenizer.decode(ids[len(prompt_ids) :]))
    return 0


# --- minitf lens ---------------------------------------------------------------------------


def add_lens_commands(sub: argparse._SubParsersAction) -> None:
    """`minitf lens CKPT TEXT`: what each layer of a trained model would predict."""
    lens = sub.add_parser(
        "lens",
        help="logit lens: what each layer of a checkpoint would predict for TEXT",
        description="Run TEXT through the model in CKPT and read the residual stream after "
        "every layer with the model's own final norm and unembedding. Prints the top-k next "
        "tokens per layer at --position and writes a heatmap (layers x positions) to --out.",
    )
    lens.add_argument("checkpoint", type=Path, help="a run folder or its checkpoint/ folder")
    lens.add_argument("text", help="the input, e.g. '123+045=' for an addition model")
    lens.add_argument("--k", type=int, default=3, help="tokens to list per layer (3)")
    lens.add_argument(
        "--position", type=int, default=-1, help="the position whose next token to list (-1: last)"
    )
    lens.add_argument(
        "--out", type=Path, help="heatmap PNG (default: lens.png beside the checkpoint folder)"
    )
    lens.set_defaults(func=_cmd_lens)


def _cmd_lens(args: argparse.Namespace) -> int:
    import matplotlib.pyplot as plt

    from minitf.lens import logit_lens

    ckpt = _load(args.checkpoint)
    if ckpt.tokenizer is None:
        raise ValueError(f"{args.checkpoint} has no tokenizer, so TEXT can't be encoded")
    if not args.text:
        raise ValueError("TEXT is empty; give the lens at least one character to read")
    if args.k < 1:
        raise ValueError(f"--k must be at least 1; got {args.k}")
    ids = ckpt.tokenizer.encode(args.text)  # unknown characters: a ValueError saying which
    if len(ids) > ckpt.config.max_len:
        raise ValueError(
            f"TEXT is {len(ids)} tokens but this model reads at most "
            f"max_len={ckpt.config.max_len}; shorten it"
        )
    result = logit_lens(ckpt.params, ckpt.config, ids, tokenizer=ckpt.tokenizer)
    print(result.table(position=args.position, k=min(args.k, ckpt.config.vocab_size)))
    # beside the checkpoint folder: in the run folder, not inside what training replaces
    is_checkpoint = (args.checkpoint / "config.json").exists()
    out = args.out or (args.checkpoint.parent if is_checkpoint else args.checkpoint) / "lens.png"
    fig = result.plot(out)
    plt.close(fig)
    print(f"wrote {out}")
    return 0


# --- entry point -------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minitf",
        description="minitf: a small transformer in JAX to learn from.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_bpe_commands(sub)
    add_course_commands(sub)  # the classroom wing: lesson, check, teacher, doctor
    add_train_commands(sub)
    add_lens_commands(sub)
    add_explore_commands(sub)  # the interactive page and the GPT-2 export
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the `minitf` command; returns the exit code (0 ok, 2 bad input)."""
    setup_jax()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except (ValueError, FileNotFoundError) as err:
        print(f"minitf: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("minitf: interrupted", file=sys.stderr)
        return 130


def setup_jax() -> None:
    """Cheaper JIT compilation (-O2, and a cache on disk, so a second run of the same
    command skips most of it). (One host device per core, minitf/devices.py, is opt-in: set
    XLA_FLAGS=--xla_force_host_platform_device_count=2 yourself; see the README.)"""
    from minitf.devices import setup_compilation

    setup_compilation()


if __name__ == "__main__":
    raise SystemExit(main())
