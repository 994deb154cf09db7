"""The `minitf` command: a table of subcommands, each a short function over the library.

    demo     train the 3-digit addition model, show its answers and a logit lens
             (`demo text`: a language model on Python's docs, minitf/text_commands.py)
    train    train a model on a task or on text (`--resume` continues a run)
    eval     measure a checkpoint on fresh test problems (text: validation loss)
    sample   continue a prompt with a checkpoint
    lens     the logit lens of a checkpoint on one text
    bpe      train a byte-level BPE tokenizer on a file, or show how one splits a text
    explore  an offline page to explore a model in the browser; export: to GPT-2's format
             (minitf/explore/commands.py)
    lesson, check, teacher, doctor   the course (minitf/course/commands.py)

Every subcommand has `--help`, a `--seed` where anything is random, and defaults that
finish on a laptop CPU. Bad input, and any error of the operating system (a full disk, a
read-only folder), becomes one line on stderr and exit code 2; a warning is one line too.
Ctrl-C stops training after the current step (`minitf.interrupts`) and exits with 130.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import inspect
import json
import os
import re
import sys
import time
import warnings
from pathlib import Path

import jax
import numpy as np

from minitf import gpt2, interrupts, text_commands
from minitf.bpe import Tokenizer
from minitf.bpe_files import check_gpt2_special
from minitf.checkpoint import write_json
from minitf.course.commands import add_course_commands
from minitf.devices import setup_compilation
from minitf.explore.commands import add_commands as add_explore_commands
from minitf.explore.page import write_demo_page
from minitf.interrupts import Interrupted
from minitf.lens import logit_lens
from minitf.memory import count_params_of
from minitf.run_folder import holds_run
from minitf.sample import generate
from minitf.tasks import EVAL_SEED, TASKS, config_for, make_task, train_defaults
from minitf.train import (
    PeerLost,
    check_eval_n,
    check_seed,
    interrupted_message,
    train,
)

DEMO_TASK = {"name": "addition", "digits": 3, "reverse_answer": False}  # as people write sums
MODEL_FLAGS = ("n_layer", "n_head", "d_model", "d_mlp")  # Config fields with a flag each
RUN_FLAGS = ("steps", "batch_size", "lr", "seed", "eval_every", "eval_n", "checkpoint_every")
TASK_FLAGS = ("digits", "reverse_answer", "p", "length", "max_word_len")  # task keywords
TOY_EVAL_N = 2000  # held-out problems in the report at the end of a toy run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minitf", description="minitf: a small transformer in JAX to learn from."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (add_demo, add_train, add_eval, add_sample, add_lens, add_bpe,
                add_explore_commands, add_course_commands):  # fmt: skip
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the `minitf` command; returns the exit code (0 ok, 2 an error, 130 Ctrl-C).

    `python -m minitf` and the installed `minitf` (minitf/__main__.py) catch Ctrl-C
    before this module imports jax; called directly, Ctrl-C is a KeyboardInterrupt.
    """
    setup_compilation()  # -O2 and a disk cache: a second run of a command compiles little
    args = build_parser().parse_args(argv)
    if args.func not in (run_demo, run_train):  # no safe point to stop at: plain Ctrl-C
        interrupts.release_ctrl_c()
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        code = _run(args)
    if code and jax.distributed.is_initialized():
        # one of several processes stops: leave at once, because jax's shutdown would
        # first wait (minutes) for the other processes, which can't go on without this one
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _run(args: argparse.Namespace) -> int:
    try:
        if interrupts.requested():
            raise Interrupted("interrupted before anything started; nothing was written")
        return args.func(args) or 0
    except Interrupted as stop:
        print(f"minitf: {stop}", file=sys.stderr)
    except KeyboardInterrupt:
        print("minitf: interrupted", file=sys.stderr)
    except (ValueError, OSError, MemoryError, OverflowError, PeerLost) as err:
        print(f"minitf: error: {_one_sentence(err)}", file=sys.stderr)
        return 2
    return interrupts.EXIT_CODE


def _one_sentence(err: Exception) -> str:
    """An exception as the one line the user sees."""
    if isinstance(err, OSError) and err.filename is not None:
        reason = OS_ERRORS.get(err.errno, err.strerror or str(err))
        return f"{err.filename}: {reason}"
    if isinstance(err, MemoryError):
        return ("ran out of memory; make the model (--d-model, --n-layer), the batch "
                "(--batch-size) or the evaluation (--eval-n, --n) smaller")  # fmt: skip
    if isinstance(err, OverflowError):
        return f"a number is too large ({err}); use a smaller value"
    return _flags_named(err)


# an operating system error, said as what it means for the user and what to do
OS_ERRORS = {
    errno.ENOSPC: "the disk is full; free some space or choose another folder (a checkpoint "
    "already saved is intact)",
    errno.EDQUOT: "your disk quota is used up; free some space or choose another folder",
    errno.EROFS: "the file system is read-only; choose a folder you can write to",
    errno.EACCES: "permission denied; choose a folder you can write to",
    errno.EPERM: "permission denied; choose a folder you can write to",
    errno.ENOTDIR: "a part of this path is a file, not a folder",
    errno.EISDIR: "this is a folder; give the path of a file",
    errno.EEXIST: "this already exists as a file; give a folder path",
    errno.ENOENT: "no such file or folder",
    errno.ENAMETOOLONG: "the name is too long",
}


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"minitf: warning: {message}", file=sys.stderr)


def _flags_named(err: Exception) -> str:
    """Library messages name TrainConfig's and Config's fields ("lr must be ...",
    "d_model=32 (now 64)"); on the command line those are flags."""
    flags = {*RUN_FLAGS, *MODEL_FLAGS}
    text = re.sub(r"^(\w+)(?= must)", lambda m: f"--{m[1].replace('_', '-')}"
                  if m[1] in flags else m[1], str(err))  # fmt: skip
    return re.sub(r"\b(\w+)=", lambda m: f"--{m[1].replace('_', '-')} "
                  if m[1] in flags else m[0], text)  # fmt: skip


# --- demo and train -------------------------------------------------------------------------


def _add_run_flags(p: argparse.ArgumentParser, out: str | None, out_help: str = "") -> None:
    """The flags of a training run; unset ones take the task's defaults (tasks.TRAIN_DEFAULTS)."""
    p.add_argument("--steps", type=int, help="optimizer steps (default: per task)")
    p.add_argument("--batch-size", type=int, help="problems per step (default: per task)")
    p.add_argument("--lr", type=float, help="peak learning rate (default: per task)")
    p.add_argument("--seed", type=int, default=0, help="seed for init and batches (0)")
    p.add_argument("--out", type=_folder, default=out, help=f"output folder ({out_help or out})")
    p.add_argument("--overwrite", action="store_true",
                   help="train from scratch into an --out folder that already holds a run")
    p.add_argument("--eval-n", type=int,
                   help="test problems (2000) or validation windows (text: 200) per evaluation")
    p.add_argument("--eval-every", type=int,
                   help="measure exact match (text: validation loss) every N steps "
                   "(default: never; text: 200)")
    p.add_argument("--checkpoint-every", type=int, default=0, help="save every N steps")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    for name in MODEL_FLAGS:
        p.add_argument(f"--{name.replace('_', '-')}", type=int, help="model size override")


def add_demo(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser(
        "demo", help="train a 3-digit addition model from scratch (about a minute on a CPU)",
        description="Train the default 3-digit addition model, print its exact-match "
        "accuracy on 2000 fresh problems and a few answers, and write the checkpoint, "
        "metrics.json and figures to --out. `minitf demo text` trains the default "
        "language model on Python's own documentation instead (about 4 minutes) and "
        "shows its samples, embeddings and logit lens (--out minitf-demo-text).",
    )  # fmt: skip
    demo.add_argument("what", nargs="?", choices=["addition", "text"], default="addition",
                      help="addition (default) or text")  # fmt: skip
    _add_run_flags(demo, None, "minitf-demo, or minitf-demo-text for text")
    demo.set_defaults(func=run_demo)


def add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train a model on a toy task or on text",
        description="Train a fresh model on TASK (or continue one with --resume) and "
        "report its exact-match accuracy on held-out problems; `train text` trains a "
        "language model on a UTF-8 file (--corpus) and reports its validation loss.",
    )  # fmt: skip
    p.add_argument("task", choices=[*sorted(TASKS), "text"], help="the task to learn")
    p.add_argument("--digits", type=int, help="addition: digits per number (3)")
    p.add_argument("--reverse-answer", action="store_true",
                   help="addition: write the answer least-significant digit first")  # fmt: skip
    p.add_argument("--p", type=int, help="modular_addition: the modulus (97)")
    p.add_argument("--length", type=int, help="copy/reverse/sort: digits per problem (8)")
    p.add_argument("--max-word-len", type=int, help="count_letters: longest word (10)")
    text_commands.add_text_flags(p)
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    _add_run_flags(p, None)
    hosts = p.add_argument_group("several processes (see docs/multihost.md)")
    hosts.add_argument("--coordinator", metavar="HOST:PORT",
                       help="train together with other processes: process 0's address")
    hosts.add_argument("--num-processes", type=int, metavar="N", help="processes in all")
    hosts.add_argument("--process-id", type=int, metavar="I", help="this one: 0 to N-1")
    p.set_defaults(func=run_train)


def _folder(text: str) -> Path:
    """An --out folder; an empty string would quietly mean the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty; give a folder name, e.g. --out runs/first")
    return Path(text)


def run_demo(args: argparse.Namespace) -> int:
    if args.out is None:
        args.out = Path("minitf-demo-text" if args.what == "text" else "minitf-demo")
    earlier = not args.overwrite and holds_run(args.out)
    if earlier:
        raise ValueError(f"{args.out} already holds a run ({earlier}); pass --overwrite to "
                         "train the demo again, or --out DIR to write it elsewhere")  # fmt: skip
    if args.what == "text":
        return text_commands.run_demo_text(args, MODEL_FLAGS, RUN_FLAGS)
    start = time.perf_counter()
    print("minitf demo: 3-digit addition, answers written plain (most-significant digit first)")
    got = _train_and_report(args, dict(DEMO_TASK))
    task, params, config = got["task"], got["params"], got["config"]
    prompts, answers = task.problems(np.random.default_rng(args.seed + 7), 8, "test")
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


def run_train(args: argparse.Namespace) -> int:
    if args.resume and args.out is None:
        raise ValueError("--resume needs --out DIR, the folder of the run to continue")
    if args.coordinator or args.num_processes is not None or args.process_id is not None:
        if args.task == "text":
            raise ValueError("--coordinator, --num-processes and --process-id work for the toy "
                             "tasks only; train text in one process")  # fmt: skip
        _start_processes(args)
    if args.task == "text":
        for name in TASK_FLAGS:
            if getattr(args, name) not in (None, False):
                flag = "--" + name.replace("_", "-")
                raise ValueError(f"{flag} is a toy task's setting; leave it out for text")
        return text_commands.run_train_text(args, MODEL_FLAGS, RUN_FLAGS)
    text_commands.refuse_text_flags(args)
    _train_and_report(args, _task_spec(args), resume=args.resume)
    return 0


def _start_processes(args: argparse.Namespace) -> None:
    """Join the other processes of a run on several hosts (jax.distributed)."""
    n, i = args.num_processes, args.process_id
    if not args.coordinator or n is None or i is None:
        raise ValueError("training with several processes needs all three of --coordinator "
                         "HOST:PORT, --num-processes N and --process-id I")  # fmt: skip
    if n < 1:
        raise ValueError(f"--num-processes must be at least 1; got {n}")
    if not 0 <= i < n:
        raise ValueError(f"--process-id must be from 0 to --num-processes - 1 ({n - 1}); "
                         f"got {i}")  # fmt: skip
    print(f"process {i} of {n}: waiting for all {n} processes at {args.coordinator}",
          flush=True)  # fmt: skip
    jax.distributed.initialize(args.coordinator, num_processes=n, process_id=i)


def _task_spec(args: argparse.Namespace) -> dict:
    """{"name": TASK, keyword: value, ...} from the task flags the user gave."""
    accepts = inspect.signature(TASKS[args.task]).parameters
    spec = {"name": args.task}
    for name in TASK_FLAGS:
        value = getattr(args, name)
        if value is None or value is False:
            continue
        if name not in accepts:
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{flag} does not apply to task {args.task}; leave it out")
        spec[name] = value
    return spec


def _train_and_report(args: argparse.Namespace, task_spec: dict, *, resume: bool = False) -> dict:
    """Train with the task's defaults overridden by the flags; evaluate; report."""
    task = make_task(**task_spec)
    model, defaults = train_defaults(task)
    model.update({k: getattr(args, k) for k in MODEL_FLAGS if getattr(args, k) is not None})
    config = config_for(task, **model)
    given = {"eval_n": TOY_EVAL_N, "eval_every": 0}
    given.update({k: getattr(args, k) for k in RUN_FLAGS if getattr(args, k) is not None})
    settings = dataclasses.replace(defaults, **given)
    print(f"task {task.name} {task.spec}: e.g. {task.examples(np.random.default_rng(1), 1)[0]}")
    print(f"model {model} ({count_params_of(config):,} parameters), {settings.steps} steps "
          f"of {settings.batch_size} problems, lr {settings.lr}")  # fmt: skip
    result = train(config, task, settings, out=args.out, resume=resume,
                   overwrite=args.overwrite, progress=not args.no_progress)  # fmt: skip
    if result.interrupted:
        raise Interrupted(interrupted_message(result))
    if interrupts.requested():  # Ctrl-C came as the last step finished
        raise Interrupted(f"interrupted after training finished; the checkpoint is in "
                          f"{result.checkpoint}")  # fmt: skip
    if jax.process_index() != 0:
        print(f"process {jax.process_index()}: trained {result.step} steps; process 0 "
              "evaluates and writes the results")  # fmt: skip
        return {"params": result.params, "config": config, "task": task}
    accuracy = task.evaluate(result.params, config, n=settings.eval_n)
    print(f"exact match on {settings.eval_n} held-out problems: {accuracy:.2%} "
          f"(trained in {result.seconds:.1f} s)")  # fmt: skip
    report = {"task": task.name, "exact_match": accuracy, "n": settings.eval_n,
              "train_seconds": result.seconds}  # fmt: skip
    if args.out is not None:
        metrics_path = args.out / "metrics.json"
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
        write_json(metrics_path, {**metrics, **report})
        print(f"wrote {args.out}/: checkpoint/, metrics.json, loss.png")
    return {**report, "params": result.params, "config": config, "task": task}


def _demo_figures(out: Path, params, config, task, tokens, lens) -> None:
    """The demo model's pictures: lens heatmap, attention per head, embedding map."""
    import matplotlib.pyplot as plt

    from minitf.model import forward, init_params
    from minitf.plots import plot_attention, plot_embeddings_pca

    display = task.tokenizer.display
    labels = [display(t) for t in tokens]
    _, acts = forward(params, np.asarray(tokens)[None], config, cache=True)
    patterns = np.stack([acts[f"blocks.{layer}.attn_pattern"][0]
                         for layer in range(config.n_layer)])  # (L, H, T, T)
    untrained = jax.jit(init_params, static_argnums=0)(config, jax.random.key(0))
    vocab = [display(i) for i in range(task.tokenizer.vocab_size)]
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


# --- eval, sample, lens: a trained checkpoint -------------------------------------------------


def add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="exact-match accuracy of a checkpoint on fresh test "
                       "problems; for a text model, validation loss and bits per byte")
    p.add_argument("checkpoint", type=Path, help="a run folder or its checkpoint/ folder")
    p.add_argument("--n", type=int, default=2000,
                   help="test problems, or validation windows of a text model (2000)")
    p.add_argument("--seed", type=int,
                   help="which problems or windows (default: tasks.EVAL_SEED)")
    p.add_argument("--json", action="store_true", help="print one line of JSON")
    p.set_defaults(func=run_eval)


def add_sample(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="continue a prompt with a trained model")
    p.add_argument("checkpoint", type=Path, help="a run folder or its checkpoint/ folder")
    p.add_argument("--prompt", required=True,
                   help="text to continue, e.g. '123+045=' or 'The for statement'")
    p.add_argument("--max-new-tokens", type=int,
                   help="tokens to add (default: the task's answer length; text: 200)")
    p.add_argument("--temperature", type=float,
                   help="0 = greedy (default: 0; text: 0.8)")
    p.add_argument("--top-k", type=int, help="sample among the k likeliest tokens")
    p.add_argument("--top-p", type=float, help="sample from the top-p probability mass")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (0)")
    p.set_defaults(func=run_sample)


def add_lens(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lens", help="logit lens: what each layer of a checkpoint would predict for TEXT",
        description="Run TEXT through the model in CKPT and read the residual stream after "
        "every layer with the model's own final norm and unembedding. Prints the top-k next "
        "tokens per layer at --position and writes a heatmap (layers x positions) to --out.",
    )  # fmt: skip
    p.add_argument("checkpoint", type=Path, help="a run folder or its checkpoint/ folder")
    p.add_argument("text", help="the input, e.g. '123+045=' for an addition model")
    p.add_argument("--k", type=int, default=3, help="tokens to list per layer (3)")
    p.add_argument("--position", type=int, default=-1,
                   help="the position whose next token to list (-1: last)")  # fmt: skip
    p.add_argument("--out", type=Path,
                   help="heatmap PNG (default: lens.png beside the checkpoint folder)")  # fmt: skip
    p.set_defaults(func=run_lens)


def _task_of(ckpt):
    """The task a checkpoint records, rebuilt; a damaged record names its file."""
    try:
        return make_task(**ckpt.task)
    except ValueError as err:
        where = ckpt.folder / "config.json" if ckpt.folder else "the checkpoint"
        raise ValueError(f"{where}: its task can't be rebuilt: {err}") from None


def run_eval(args: argparse.Namespace) -> int:
    check_eval_n(args.n, "--n")
    if args.seed is not None:
        check_seed(args.seed, "--seed")
    ckpt = gpt2.load_model(args.checkpoint)
    if not ckpt.task:
        raise ValueError(f"{args.checkpoint} records no task, so there is nothing to evaluate")
    if ckpt.task.get("name") == "text":
        return text_commands.run_eval_text(ckpt, args)
    task = _task_of(ckpt)
    seed = EVAL_SEED if args.seed is None else args.seed
    accuracy = task.evaluate(ckpt.params, ckpt.config, n=args.n, seed=seed)
    if args.json:
        print(json.dumps({"task": task.name, "exact_match": accuracy, "n": args.n}))
    else:
        print(f"{task.name} {task.spec}: exact match {accuracy:.2%} on {args.n} test problems")
    return 0


def run_sample(args: argparse.Namespace) -> int:
    check_seed(args.seed, "--seed")
    ckpt = gpt2.load_model(args.checkpoint)
    if ckpt.tokenizer is None:
        raise ValueError(f"{args.checkpoint} has no tokenizer, so a text prompt can't be read")
    if ckpt.task and ckpt.task.get("name") == "text":
        return text_commands.run_sample_text(ckpt, args)
    prompt_ids = ckpt.tokenizer.encode(args.prompt)
    n_new = args.max_new_tokens
    if n_new is None:
        n_new = _task_of(ckpt).answer_len if ckpt.task else 20
    n_new = min(n_new, ckpt.config.max_len - len(prompt_ids))
    temperature = 0.0 if args.temperature is None else args.temperature
    ids = generate(ckpt.params, ckpt.config, prompt_ids, n_new, temperature=temperature,
                   top_k=args.top_k, top_p=args.top_p, key=jax.random.key(args.seed))  # fmt: skip
    print(args.prompt + ckpt.tokenizer.decode(ids[len(prompt_ids) :]))
    return 0


def run_lens(args: argparse.Namespace) -> int:
    import matplotlib.pyplot as plt

    ckpt = gpt2.load_model(args.checkpoint)
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
    plt.close(result.plot(out))
    print(f"wrote {out}")
    return 0


# --- bpe ------------------------------------------------------------------------------------


def add_bpe(sub: argparse._SubParsersAction) -> None:
    """`minitf bpe train|encode`: train a tokenizer on a text file, look at encodings."""
    bpe = sub.add_parser("bpe", help="train and use a byte-level BPE tokenizer")
    bpe_sub = bpe.add_subparsers(dest="bpe_command", required=True, metavar="{train,encode}")
    p = bpe_sub.add_parser(
        "train", help="learn merges from a UTF-8 text file",
        description="Train a byte-level BPE tokenizer on FILE and write it to DIR as "
        "tokenizer.bpe (minitf's format) plus vocab.json and merges.txt (GPT-2's format). "
        "Training is deterministic: ties go to the greatest pair of byte strings.",
    )  # fmt: skip
    p.add_argument("file", type=Path, metavar="FILE", help="UTF-8 text to train on")
    p.add_argument("--vocab-size", type=int, default=1024, metavar="N",
                   help="tokens in all: 256 bytes + merges + special tokens (default 1024)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="folder to write the files to")
    p.add_argument("--pattern", default="gpt4", metavar="PATTERN",
                   help="pre-split regex: gpt2, gpt4 (default), none, or a regex of your own")
    p.add_argument("--special", nargs="+", action="extend", default=[], metavar="TOKEN",
                   help="special tokens, e.g. --special '<|endoftext|>'")  # fmt: skip
    p.set_defaults(func=run_bpe_train)
    p = bpe_sub.add_parser(
        "encode", help="show how a trained tokenizer splits TEXT",
        description="Encode TEXT with the tokenizer in DIR (tokenizer.bpe, or GPT-2's "
        "vocab.json + merges.txt) and print each token's id and printable form (Ġ is a space).",
    )  # fmt: skip
    p.add_argument("dir", type=Path, metavar="DIR",
                   help="folder written by `minitf bpe train`, or a GPT-2 folder")
    p.add_argument("text", metavar="TEXT", help="the text to encode")
    p.add_argument("--allow-special", action="store_true",
                   help="recognise special tokens in TEXT (by default they are plain text)")
    p.set_defaults(func=run_bpe_encode)


def run_bpe_train(args: argparse.Namespace) -> int:
    """Train, write the files, show the longest tokens and the compression.

    The file is read in pieces (`minitf.long_text.file_pieces`), twice: once to count its
    chunks, once to measure the compression, so memory stays bounded however big it is.
    """
    from tqdm.auto import tqdm

    from minitf.bpe import check_vocab_size, make_splitter
    from minitf.corpora import file_corpus
    from minitf.long_text import file_pieces

    with open(args.file, "rb") as f:  # a missing file or a folder: the OS's own error
        if not f.read(1):
            raise ValueError(f"{args.file} is empty; give bpe train some text to learn from")
    n_bytes = file_corpus(args.file).n_bytes  # UTF-8 throughout (or says where not)
    check_gpt2_special(args.special)  # before training, not after it
    pattern = None if args.pattern == "none" else args.pattern
    check_vocab_size(args.vocab_size, args.special)  # before any progress bar is drawn
    make_splitter(pattern)
    start = time.perf_counter()
    with tqdm(total=n_bytes, desc="read and count chunks", unit="B", unit_scale=True) as bar:
        pieces = file_pieces(args.file, pattern, on_bytes=bar.update)
        tok = Tokenizer.train(pieces, args.vocab_size, pattern=pattern,
                              special_tokens=args.special, progress=True)  # fmt: skip
    seconds = time.perf_counter() - start
    tok.save_gpt2(args.out)  # first: it checks every token has its own name before writing
    tok.save(args.out / Tokenizer.FILE)
    print(f"trained {tok.vocab_size} tokens on {n_bytes:,} bytes in {seconds:.1f} s")
    print(f"wrote {args.out / Tokenizer.FILE}, vocab.json and merges.txt")
    longest = sorted(tok.merge_ids, key=lambda i: (-len(tok.token_bytes(i)), i))[:20]
    print("\nthe 20 longest tokens:")
    print(f"{'id':>6}  {'bytes':>5}  token")
    for i in longest:
        print(f"{i:>6}  {len(tok.token_bytes(i)):>5}  {tok.token_str(i)}")
    n_tokens = 0
    with tqdm(total=n_bytes, desc="encode (for bytes/token)", unit="B", unit_scale=True) as bar:
        for piece in file_pieces(args.file, pattern, on_bytes=bar.update):
            n_tokens += len(tok.encode(piece))
    print(f"\nbytes/token on the training text: {n_bytes / max(n_tokens, 1):.2f} "
          f"({n_bytes:,} bytes -> {n_tokens:,} tokens)")  # fmt: skip
    return 0


def run_bpe_encode(args: argparse.Namespace) -> int:
    """Print the tokens of one text as a small table."""
    if (args.dir / Tokenizer.FILE).is_file():
        tok = Tokenizer.load(args.dir / Tokenizer.FILE)
    elif (args.dir / "vocab.json").is_file() and (args.dir / "merges.txt").is_file():
        tok = Tokenizer.from_gpt2(args.dir)
    else:
        raise FileNotFoundError(
            f"{args.dir} has no {Tokenizer.FILE} (nor vocab.json + merges.txt); "
            "make one with `minitf bpe train FILE --out DIR`"
        )
    ids = tok.encode(args.text, allowed_special="all" if args.allow_special else "none")
    print(f"{'pos':>4}  {'id':>6}  token")
    for pos, i in enumerate(ids):
        print(f"{pos:>4}  {i:>6}  {tok.token_str(i)}")
    print(f"{len(ids)} tokens for {len(args.text.encode('utf-8'))} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
