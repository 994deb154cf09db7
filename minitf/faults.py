"""Named fault points: how the tests kill a process at an exact line, deterministically.

Crash-safety claims ("a kill at any moment leaves a loadable checkpoint") are tested by
running minitf in a subprocess with `MINITF_FAULT` set to the name of a point in the
code; when the process reaches that point it dies there, as if by `kill -9`:

    MINITF_FAULT=checkpoint-moved-aside   # die between the two renames of a save
    MINITF_FAULT=sigint@cli-start         # send ourselves Ctrl-C while jax loads

`kill@NAME` (or plain `NAME`) ends the process with `os._exit` (no cleanup, no flushing:
like a power cut for this process); `sigint@NAME` delivers a real SIGINT to it; `NAME#K`
fires only the K-th time the point is reached (`checkpoint-moved-aside#2`: during the
second save). Several faults are separated by commas. Unset, a fault point costs one
dictionary lookup. Imports nothing heavy, so the `minitf` command can use it first.
"""

from __future__ import annotations

import os
import signal

ENV = "MINITF_FAULT"
KILLED = 86  # the exit status of a process killed at a fault point (tests check it)


_reached: dict[str, int] = {}  # how often each point was reached, for NAME#K


def point(name: str) -> None:
    """A place where a test may kill this process or interrupt it (see the module doc)."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    _reached[name] = _reached.get(name, 0) + 1
    for fault in wanted.split(","):
        action, _, where = fault.strip().rpartition("@")
        where, _, nth = where.partition("#")
        if where != name or (nth and int(nth) != _reached[name]):
            continue
        if action == "sigint":
            os.kill(os.getpid(), signal.SIGINT)
        else:
            os._exit(KILLED)
