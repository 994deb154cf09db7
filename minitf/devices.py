"""Compile faster, and optionally split a CPU into several XLA host devices.

`setup_compilation()` makes JIT compilation cheaper (see its docstring); the `minitf`
command, the lessons and the tests call it.

Host devices: XLA can present one CPU as several devices, so that the data-parallel code
`minitf.train` uses for several GPUs runs on a laptop. The number is read from
`XLA_FLAGS` once, when jax starts its CPU backend, so `configure_cpu_devices()` must run
before jax computes anything (and before `setup_compilation`, which also sets XLA_FLAGS):

    from minitf.devices import configure_cpu_devices
    configure_cpu_devices()  # before jax is imported
    import jax
    jax.devices()  # [CpuDevice(id=0), CpuDevice(id=1)] on a 2-core machine

It never overrides a user's own `XLA_FLAGS` (set it to anything, even "", to opt out),
and on a machine with a GPU the extra host devices are unused: jax picks the GPU. It is
not the default: XLA already runs big matrix products on every core, and splitting the
batch changes the order of floating-point sums (see the README's "Several devices").
"""

from __future__ import annotations

import os
import sys

FLAG = "--xla_force_host_platform_device_count"


def cpu_count() -> int:
    """CPU cores this process may run on (respects taskset / container limits)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no sched_getaffinity
        return os.cpu_count() or 1


def configure_cpu_devices(n: int | None = None) -> int | None:
    """Ask XLA for `n` host CPU devices (default: one per core); returns `n`.

    Changes nothing and returns None when `XLA_FLAGS` is already set, when jax was
    already imported (the flag would be ignored), or when there is only one core.
    """
    n = cpu_count() if n is None else n
    if n <= 1 or "XLA_FLAGS" in os.environ or "jax" in sys.modules:
        return None
    os.environ["XLA_FLAGS"] = f"{FLAG}={n}"
    return n


OPT_FLAG = "--xla_backend_optimization_level"
OPT_LEVEL = 2  # XLA's default is 3


def setup_compilation(*, disk_cache: bool = True) -> None:
    """Make JIT compilation cheaper: -O2 machine code, and compiled programs kept on disk.

    XLA spends most of a small model's first training step optimising machine code. At
    -O2 instead of its default -O3 the step of benchmarks/train.py config A compiled in
    2.2 s instead of 3.4 s on a 2-core CPU and ran at the same speed. XLA reads its flags
    when jax first computes something, so call this before that; a user's own
    `--xla_backend_optimization_level` in XLA_FLAGS wins.

    The disk cache (~/.cache/minitf/jax) lets the second run of a command or lesson skip
    most compilation; a user's JAX_COMPILATION_CACHE_DIR wins.
    """
    import jax

    flags = os.environ.get("XLA_FLAGS", "")
    if OPT_FLAG not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {OPT_FLAG}={OPT_LEVEL}".strip()
    if disk_cache and "JAX_COMPILATION_CACHE_DIR" not in os.environ:
        folder = os.path.join(os.path.expanduser("~"), ".cache", "minitf", "jax")
        jax.config.update("jax_compilation_cache_dir", folder)
