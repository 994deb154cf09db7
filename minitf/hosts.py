"""Several hosts: check that every process is about to train the same run.

Data parallelism over hosts only works when every process computes the same step: the
same model, settings and data, from the same parameters. Nothing in the collectives
checks that. A host started with another seed would still average its gradients with the
others, and the "replicated" parameters would silently differ from host to host. So
before the first step every process hashes each of its settings, its first batch and its
starting parameters, the hashes are gathered from all processes through the jax
collectives (the same channel the gradients use), and every process refuses, with the
same sentence, when any of them differs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import jax
import numpy as np
from jax.experimental import multihost_utils


class PeerLost(RuntimeError):
    """Training on several hosts: another process stopped or crashed, so this one can't go
    on (every step needs all of them). The message says where the last checkpoint is."""


def all_ready(ready: bool) -> None:
    """Tell every process whether this one passed its start-up checks (its --out folder,
    its memory); a ValueError on the ready ones when another is not, so that all of them
    stop together instead of waiting for a process that has already given up. A process
    that is not ready raises its own error after this returns."""
    try:
        everyone = np.asarray(multihost_utils.process_allgather(np.array([int(ready)])))
    except jax.errors.JaxRuntimeError as err:
        raise PeerLost(
            f"process {jax.process_index()} lost contact with the other processes as they "
            f"started (one of them stopped; see its output). The error was: "
            f"{str(err).strip().splitlines()[0][:200]}"
        ) from None
    not_ready = [i for i, ok in enumerate(everyone.ravel()) if not ok]
    if ready and not_ready:
        raise ValueError(f"process {not_ready[0]} could not start (see its output), so none "
                         "of the processes trains")  # fmt: skip


def agree_across_hosts(config, task_spec: dict, settings, resume: bool,
                       first_batch: tuple, params) -> None:  # fmt: skip
    """A ValueError on every process unless all of them hold the same run (see above)."""
    parts = {
        "the model config": config.to_dict(),
        "the task": task_spec,
        **{f"--{f.name.replace('_', '-')}": getattr(settings, f.name)
           for f in dataclasses.fields(settings)},  # fmt: skip
        "--resume": resume,
        "the first batch of data": _digest(first_batch),
        "the starting parameters (the checkpoint resumed from)": _digest(params),
    }
    mine = np.array([_hash32(value) for value in parts.values()], dtype=np.uint32)  # (k,)
    try:
        everyone = np.asarray(multihost_utils.process_allgather(mine))  # (processes, k)
    except jax.errors.JaxRuntimeError as err:
        raise PeerLost(
            f"process {jax.process_index()} lost contact with the other processes while "
            "comparing their settings (one of them stopped; see its output). The error "
            f"was: {str(err).strip().splitlines()[0][:200]}"
        ) from None
    differ = [name for k, name in enumerate(parts) if (everyone[:, k] != everyone[0, k]).any()]
    if differ:
        others = [i for i in range(len(everyone)) if (everyone[i] != everyone[0]).any()]
        raise ValueError(
            f"the {len(everyone)} processes must train the same run, but process "
            f"{others[0]} differs from process 0 in {', '.join(differ)}; start every "
            "process with the same command, settings and data"
        )


def _hash32(value) -> int:
    text = json.dumps(value, sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "little")


def _digest(tree) -> str:
    """A hash of every array in a pytree (values, shapes and dtypes)."""
    h = hashlib.sha256()
    for leaf in jax.tree.leaves(tree):
        leaf = np.ascontiguousarray(leaf)
        h.update(f"{leaf.shape}{leaf.dtype}".encode())
        h.update(leaf.tobytes())
    return h.hexdigest()
