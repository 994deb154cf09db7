"""Ctrl-C as a request: the first one asks the running job to stop at a safe point.

Python turns SIGINT into a KeyboardInterrupt wherever the program happens to be, which
can be inside a garbage-collector callback of jax (where it is printed as "Exception
ignored" and lost) or in the middle of writing a file. The `minitf` command installs
`catch_ctrl_c()` before it imports jax, so a Ctrl-C only sets a flag: the training loop
checks `requested()` between steps, saves and stops, and the command says where the
checkpoint is. A second Ctrl-C quits at once (checkpoints are crash-safe, see
`minitf.checkpoint`). Library code that never calls `catch_ctrl_c()` (a notebook, a
script) gets Python's usual KeyboardInterrupt, which `minitf.train.train` also handles.
"""

from __future__ import annotations

import os
import signal

EXIT_CODE = 130  # what shells report for a program ended by Ctrl-C (128 + SIGINT)
_state = {"requested": False}


class Interrupted(Exception):
    """Ctrl-C stopped a command; the message says what was saved (the `minitf` command
    prints it and exits with EXIT_CODE)."""


def _on_ctrl_c(signum: int, frame: object) -> None:
    if _state["requested"]:
        # os.write, not print: a signal can arrive while sys.stderr is mid-write
        os.write(2, b"\nminitf: interrupted again; quitting now\n")
        os._exit(EXIT_CODE)
    _state["requested"] = True
    os.write(2, b"\nminitf: stopping at the next safe point (Ctrl-C again to quit now)\n")


def catch_ctrl_c() -> None:
    """From now on a Ctrl-C sets `requested()` instead of raising KeyboardInterrupt."""
    _state["requested"] = False
    signal.signal(signal.SIGINT, _on_ctrl_c)


def release_ctrl_c() -> None:
    """Back to Python's KeyboardInterrupt (for commands with no safe point to stop at)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)


def requested() -> bool:
    """True once Ctrl-C was pressed while `catch_ctrl_c()` was in force."""
    return _state["requested"]
