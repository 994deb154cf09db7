"""The `minitf` command: one subcommand per job, each a thin layer over the library.

Every subcommand has `--help`, a `--seed` where anything is random, and defaults that
finish on a laptop CPU. Bad input becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys


# --- minitf bpe ------------------------------------------------------------------------


def add_bpe_commands(sub: argparse._SubParsersAction) -> None:
    """`minitf bpe train|encode`: train a tokenizer on a text file, look at encodings."""
    bpe = sub.add_parser("bpe", help="train and use a byte-level BPE tokenizer")
    bpe_sub = bpe.add_subparsers(dest="bpe_command", required=True, metavar="{train,encode}")
    # (the bpe subcommands are filled in by the tokenizer work)


# --- entry point -------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minitf",
        description="minitf: a small transformer in JAX to learn from.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_bpe_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the `minitf` command; returns the exit code (0 ok, 2 bad input)."""
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


if __name__ == "__main__":
    raise SystemExit(main())
