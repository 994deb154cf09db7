"""Will a training run fit? A rough estimate of the memory a step needs, checked before
any work, so `--d-model 100000` or `--batch-size 100000000` is one sentence instead of
minutes of silence and a crash.

The estimate counts float32 numbers: the parameters, their new values, the gradients and
Adam's two moments (5 copies, one set per device), plus the activations the backward
pass keeps for every token. It is meant to err on the high side: a run it lets through
should not run out of memory on the way.
"""

from __future__ import annotations

import os

import jax

from minitf.model import Config, count_params, init_params

FLOAT_BYTES = 4  # float32


def count_params_of(config: Config) -> int:
    """The parameters `init_params(config)` makes, from the shapes alone: jax.eval_shape
    traces the initialisation without building a single array."""
    shapes = jax.eval_shape(lambda: init_params(config, jax.random.key(0)))
    return count_params(shapes)


def memory_needed(config: Config, batch_size: int, seq_len: int) -> int:
    """Bytes a training step needs, roughly: 5 copies of the parameters (see the module
    docstring) plus, per token, about 16 D + 4 M + 3 H T numbers per layer and 4 V for the
    logits and their gradient."""
    D, M, H, L = config.d_model, config.d_mlp, config.n_head, config.n_layer
    per_token = L * (16 * D + 4 * M + 3 * H * seq_len) + 4 * config.vocab_size
    return FLOAT_BYTES * (5 * count_params_of(config) * jax.local_device_count()
                          + batch_size * seq_len * per_token)  # fmt: skip


def available_memory() -> int | None:
    """The accelerators' free memory (all local devices), else the host's available
    memory; None where it can't be read."""
    stats = [device.memory_stats() for device in jax.local_devices()]
    if all(stats) and all("bytes_limit" in s for s in stats):
        return sum(s["bytes_limit"] - s.get("bytes_in_use", 0) for s in stats)
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(config: Config, batch_size: int, seq_len: int) -> None:
    """A ValueError, before any work, when a run can't fit in memory."""
    need = memory_needed(config, batch_size, seq_len)
    have = available_memory()
    if have is not None and need > have:
        raise ValueError(
            f"this run needs about {need / 1e9:,.1f} GB of memory (a model of "
            f"{count_params_of(config):,} parameters with its gradients and optimizer state, "
            f"and the activations of {batch_size:,} sequences of {seq_len} tokens) but "
            f"{have / 1e9:,.1f} GB is available; make the model smaller (--d-model, "
            "--n-layer, --d-mlp) or the batch (--batch-size)"
        )
