"""`minitf explore` (the interactive page, or its local server) and `minitf export`.

`minitf.cli` adds them to the `minitf` command; each is a thin layer over
`minitf.explore` and `minitf.gpt2.export`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from minitf import gpt2


def add_commands(sub: argparse._SubParsersAction) -> None:
    """`minitf explore CKPT` and `minitf export CKPT --to FOLDER`."""
    explore = sub.add_parser(
        "explore",
        help="an offline interactive page of a model: logit lens, attention, attribution, "
        "embeddings",
        description="Write one self-contained HTML file (works offline, from file://) that "
        "shows the logit lens, every attention head, the direct logit attribution and the "
        "embedding map of the model in CKPT for a few inputs, all linked. A toy-task model "
        "shows a few test problems with its answers unless you give --text, a language "
        "model (`minitf train text`) two lines of its validation text. With --serve, "
        "serve the page on 127.0.0.1 and type any input into it.",
    )
    explore.add_argument("checkpoint", type=Path, metavar="CKPT",
                         help="a run folder, its checkpoint/ folder, or a GPT-2-format folder")
    explore.add_argument("--text", action="append", metavar="TEXT",
                         help="an input to show (repeat for more); a toy task's whole prompt, "
                         "e.g. '123+045=', is completed with the model's answer")
    explore.add_argument("--out", type=Path, metavar="FILE.html",
                         help="where to write the page (default: explore.html beside the "
                         "checkpoint folder)")
    explore.add_argument("--serve", action="store_true",
                         help="serve the page on http://127.0.0.1 and answer typed inputs")
    explore.add_argument("--port", type=int, metavar="N",
                         help="the port for --serve (default 8000; 0: any free port)")
    explore.add_argument("--fit-tuned-lens", action="store_true",
                         help="fit a tuned lens first (toy tasks) and keep it in the "
                         "checkpoint folder as tuned_lens.npz; the page then offers it")
    explore.add_argument("--seed", type=int, default=0, help="seed for --fit-tuned-lens (0)")
    explore.set_defaults(func=_cmd_explore)

    export = sub.add_parser(
        "export",
        help="write a checkpoint as a GPT-2 folder that Hugging Face transformers reads",
        description="Write the model in CKPT as a GPT-2-format folder (config.json, "
        "model.safetensors, and vocab.json + merges.txt for a BPE tokenizer) that "
        "transformers' GPT2LMHeadModel.from_pretrained(FOLDER) opens, and minitf reads back "
        "(`minitf lens FOLDER TEXT`). FOLDER must be new or empty.",
    )
    export.add_argument("checkpoint", type=Path, metavar="CKPT",
                        help="a run folder or its checkpoint/ folder")
    export.add_argument("--to", type=Path, required=True, metavar="FOLDER",
                        help="the folder to write (new or empty)")
    export.set_defaults(func=_cmd_export)


def _model_folder(path: Path) -> Path:
    """The folder that holds the model itself: a run folder's checkpoint/, else `path`."""
    from minitf.train import CHECKPOINT_DIR

    if not (path / "config.json").exists() and (path / CHECKPOINT_DIR).is_dir():
        return path / CHECKPOINT_DIR
    return path


def _tuned_lens(args: argparse.Namespace, ckpt, folder: Path):
    """The checkpoint's tuned lens: fitted now with --fit-tuned-lens, else read from
    tuned_lens.npz in the checkpoint folder where one is, else None."""
    from minitf.explore.data import fit_tuned_lens, toy_task
    from minitf.tuned_lens import TUNED_LENS_FILE, load_tuned_lens, save_tuned_lens

    path = folder / TUNED_LENS_FILE
    if args.fit_tuned_lens:
        task = toy_task(ckpt.task)
        if task is None:
            raise ValueError(
                "--fit-tuned-lens trains on the checkpoint's toy task, and this model has "
                "none; leave the option out"
            )
        start = time.perf_counter()
        tuned = fit_tuned_lens(ckpt.params, ckpt.config, task, seed=args.seed)
        save_tuned_lens(tuned, path)
        print(f"fitted a tuned lens in {time.perf_counter() - start:.1f} s; wrote {path}")
        return tuned
    return load_tuned_lens(path, ckpt.config) if path.is_file() else None


def _cmd_explore(args: argparse.Namespace) -> int:
    from minitf.explore import server
    from minitf.explore.data import default_inputs, is_text_model
    from minitf.explore.page import check_writable, write_page

    if args.port is not None and not args.serve:
        raise ValueError("--port only applies with --serve; add --serve or leave --port out")
    if args.serve and args.out is not None:
        raise ValueError("--out writes a file and --serve serves the page; choose one")
    out = args.out
    if out is None:  # beside the checkpoint folder, as `minitf lens` puts its heatmap
        is_checkpoint = (args.checkpoint / "config.json").exists()
        out = (args.checkpoint.parent if is_checkpoint else args.checkpoint) / "explore.html"
    if not args.serve:
        check_writable(out)  # before any work
    start = time.perf_counter()
    ckpt = gpt2.load_model(args.checkpoint)
    if ckpt.tokenizer is None:
        raise ValueError(
            f"{args.checkpoint} has no tokenizer (a GPT-2 folder needs vocab.json and "
            "merges.txt), so no text can be shown"
        )
    tuned = _tuned_lens(args, ckpt, _model_folder(args.checkpoint))
    inputs = args.text
    if inputs is None and is_text_model(ckpt.task):  # lines of its own validation text
        inputs = default_inputs(ckpt.task, tokenizer=ckpt.tokenizer, max_len=ckpt.config.max_len,
                                validation=ckpt.data.get("validation"))  # fmt: skip
    if args.serve:
        port = 8000 if args.port is None else args.port
        httpd = server.make_server(ckpt.params, ckpt.config, ckpt.tokenizer, inputs,
                                   task=ckpt.task, tuned=tuned, port=port)  # fmt: skip
        server.serve(httpd)
        return 0
    hint = f"Type your own inputs: minitf explore {args.checkpoint} --serve"
    path = write_page(out, ckpt.params, ckpt.config, ckpt.tokenizer, inputs, task=ckpt.task,
                      tuned=tuned, hint=hint)  # fmt: skip
    size = path.stat().st_size
    print(f"wrote {path} ({size / 1024:.0f} KB, {time.perf_counter() - start:.1f} s): open it "
          "in your browser, no network needed")  # fmt: skip
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    ckpt = gpt2.load_model(args.checkpoint)
    try:
        folder = gpt2.export(args.to, ckpt.params, ckpt.config, ckpt.tokenizer, task=ckpt.task)
    except ImportError as err:
        raise ValueError(str(err)) from None
    files = sorted(p.name for p in folder.iterdir())
    print(f"wrote {folder}/: {', '.join(files)}")
    print(f"open it with transformers: GPT2LMHeadModel.from_pretrained({str(folder)!r})")
    note = gpt2.tokenizer_note(ckpt.tokenizer)
    if note:
        print(f"note: {note}")
    return 0
