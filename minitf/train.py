"""The training loop: masked next-token loss, AdamW, checkpoints, data parallel.

One step: draw a batch from the task, compute the cross-entropy of the model's next-token
predictions on the answer tokens only (the loss mask), take its gradient, clip it, and
let AdamW (linear warmup, then cosine decay of the learning rate) update the parameters.
The whole step is one `jax.jit` call. Batch i is drawn from `np.random.default_rng([seed,
i])`, so a run that stops and resumes from a checkpoint sees exactly the batches an
uninterrupted run sees and ends with bit-identical parameters.

Data parallel: the batch is split across `jax.devices()` along a one-axis mesh named
"batch" and the parameters are replicated; the `jax.jit` step is written as if for one
device, and XLA inserts the all-reduce that averages the gradients. On one CPU the mesh
has one device and nothing changes (XLA already spreads big matrix products over the
cores). Host devices (`minitf.devices.configure_cpu_devices`, i.e.
`XLA_FLAGS=--xla_force_host_platform_device_count=2`, set before jax starts) run the
same data-parallel step on one machine; `benchmarks/train.py --devices 2` shows
whether that is faster on yours.

Several hosts: start the same script on every host with

    import jax
    jax.distributed.initialize()  # reads coordinator address, process count and id
                                  # from the cluster (SLURM, TPU pods) or pass them in
    from minitf.train import train
    train(config, task, steps=..., batch_size=..., out=...)  # same call on every host

`jax.devices()` then lists every host's devices; each host draws the same global batch
(same seed, cheap) and hands its own devices their slices, and only process 0 writes
checkpoints, metrics and figures (point `out` at a shared file system to resume).

Left out: gradient accumulation, mixed precision, model (tensor) parallelism.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from minitf.checkpoint import Checkpoint, load_checkpoint, save_checkpoint, unflatten
from minitf.model import Config, Params, forward, init_params
from minitf.tasks import Task

__all__ = [
    "TrainResult",
    "TrainingDiverged",
    "Checkpoint",
    "load_checkpoint",
    "save_checkpoint",
    "loss_fn",
    "make_optimizer",
    "data_mesh",
    "make_train_step",
    "train",
]

CHECKPOINT_DIR = "checkpoint"  # train(out=...) writes out/checkpoint/, out/metrics.json, ...


class TrainingDiverged(ValueError):
    """The loss became NaN or infinite: training can't continue from these parameters."""


@dataclasses.dataclass
class TrainResult:
    """What `train` returns."""

    params: Params  # final parameters (replicated over the devices)
    opt_state: optax.OptState  # final optimizer state
    history: dict[str, list]  # step, loss, accuracy, step_time; eval_step, exact_match
    seconds: float  # wall time of this call, JIT compilation included
    step: int  # steps done in total (counting those before a resume)
    interrupted: bool = False  # True when Ctrl-C stopped the run early
    checkpoint: Path | None = None  # the last checkpoint written, if any
    snapshots: list[tuple[int, Params]] = dataclasses.field(default_factory=list)
    # (step, params on the host) at step 0 and every `snapshot_every` steps, for
    # "lens over training" (lesson 8); empty unless snapshot_every > 0


# --- the loss and one step ----------------------------------------------------------------


def loss_fn(
    params: Params, tokens: jax.Array, loss_mask: jax.Array, config: Config
) -> tuple[jax.Array, jax.Array]:
    """Mean cross-entropy over the answer tokens, and the fraction of them predicted right.

    [B, T] tokens, [B, T] loss_mask (True where the NEXT token is scored) -> two scalars.
    Lesson 6 builds it from its three steps: the shift by one, the mask, the mean.
    """
    logits = forward(params, tokens[:, :-1], config)  # (B, T-1, V): position t predicts t+1
    targets = tokens[:, 1:]  # (B, T-1)
    mask = loss_mask[:, :-1].astype(jnp.float32)  # (B, T-1)
    log_probs = jax.nn.log_softmax(logits, axis=-1)  # (B, T-1, V)
    nll = -jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]  # (B, T-1)
    n_scored = mask.sum()  # ()
    loss = (nll * mask).sum() / n_scored  # ()
    correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)  # (B, T-1)
    return loss, (correct * mask).sum() / n_scored


def make_optimizer(
    lr: float, steps: int, *, warmup: int, weight_decay: float, clip: float
) -> optax.GradientTransformation:
    """Clip the gradient's global norm, then AdamW with linear warmup + cosine decay.

    Weight decay applies to matrices only: decaying biases and layer-norm scales towards
    zero would only fight the normalisation (nanoGPT does the same). Used in lesson 6;
    lesson 13 shows what weight decay does after a model has memorised (grokking).
    """
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=lr, warmup_steps=warmup, decay_steps=steps, end_value=lr / 10
    )
    matrices_only = lambda params: jax.tree.map(lambda x: x.ndim >= 2, params)  # noqa: E731
    return optax.chain(
        optax.clip_by_global_norm(clip),
        optax.adamw(schedule, b1=0.9, b2=0.98, weight_decay=weight_decay, mask=matrices_only),
    )


def make_train_step(config: Config, optimizer: optax.GradientTransformation, mesh: Mesh):
    """The jitted step (params, opt_state, tokens, loss_mask) -> (params, opt_state, loss, acc).

    in/out shardings say where data lives: the batch split along "batch", everything
    else replicated. No buffer donation: the old parameters must survive a Ctrl-C in the
    middle of a step, and with jax 0.10.2 donation plus the cross-device all-reduce
    deadlocked on a 2-core CPU. Lesson 6 writes a training loop around it.
    """
    replicated = NamedSharding(mesh, PartitionSpec())
    split = NamedSharding(mesh, PartitionSpec("batch"))

    def step(params, opt_state, tokens, loss_mask):
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (loss, accuracy), grads = grad_fn(params, tokens, loss_mask, config)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, accuracy

    return jax.jit(
        step,
        in_shardings=(replicated, replicated, split, split),
        out_shardings=replicated,
    )


def data_mesh(batch_size: int) -> Mesh:
    """A one-axis mesh ("batch") over the devices that share each batch: all of them, or,
    on one host, the most that split `batch_size` evenly (a batch of 5 on 2 CPU devices
    runs on one device rather than failing)."""
    devices = jax.devices()
    if jax.process_count() == 1:
        n = max(k for k in range(1, len(devices) + 1) if batch_size % k == 0)
        devices = devices[:n]
    return Mesh(np.array(devices), ("batch",))


@functools.lru_cache(maxsize=8)
def _optimizer_and_step(config, lr, steps, warmup, weight_decay, clip, mesh):
    """Build (and remember) the optimizer, the jitted initial state and the jitted step,
    so that calling `train` again with the same settings (resuming, tests) reuses them."""
    optimizer = make_optimizer(lr, steps, warmup=warmup, weight_decay=weight_decay, clip=clip)

    def init_state(key: jax.Array) -> tuple[Params, optax.OptState]:
        """Fresh parameters and the optimizer's (zero) state for them."""
        params = init_params(config, key)
        return params, optimizer.init(params)

    # jit: one compiled program instead of dozens of small eager ones (seconds on a CPU)
    init_state = jax.jit(init_state, out_shardings=NamedSharding(mesh, PartitionSpec()))
    return optimizer, init_state, make_train_step(config, optimizer, mesh)


def _global_array(x: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """Place a host array as one global array: each device (on any host) gets its slice."""
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def _local(tree):
    """Replicated arrays -> numpy copies from this host (works on several hosts too)."""
    return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), tree)


# --- the loop ------------------------------------------------------------------------------


def train(
    config: Config,
    task: Task,
    *,
    steps: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    warmup: int | None = None,
    weight_decay: float = 0.1,
    clip: float = 1.0,
    eval_every: int = 0,
    eval_n: int = 500,
    checkpoint_every: int = 0,
    out: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    snapshot_every: int = 0,
) -> TrainResult:
    """Train a fresh model (or resume one from `out`) on a task; returns a TrainResult.

    warmup defaults to 5% of the steps. eval_every > 0 measures exact match on eval_n
    held-out problems that often. With `out`, writes out/checkpoint/ every
    checkpoint_every steps (0: only at the end), metrics.json and loss.png.
    Ctrl-C saves a checkpoint and returns with `interrupted=True`. snapshot_every > 0
    keeps a host copy of the parameters that often in `TrainResult.snapshots`.
    Lesson 6 walks through it.
    """
    intervals = dict(eval_every=eval_every, checkpoint_every=checkpoint_every,
                     snapshot_every=snapshot_every)  # fmt: skip
    _check_settings(config, task, steps, batch_size, lr, out, resume, intervals)
    warmup = max(1, steps // 20) if warmup is None else warmup
    out = Path(out) if out is not None else None
    writer = jax.process_index() == 0  # on several hosts only the first one writes files

    mesh = data_mesh(batch_size)
    replicated = NamedSharding(mesh, PartitionSpec())
    split = NamedSharding(mesh, PartitionSpec("batch"))
    optimizer, init_state, step_fn = _optimizer_and_step(
        config, lr, steps, warmup, weight_decay, clip, mesh
    )
    settings = {"seed": seed, "steps": steps, "batch_size": batch_size, "lr": lr,
                "warmup": warmup, "weight_decay": weight_decay, "clip": clip}  # fmt: skip
    task_spec = {"name": task.name, **task.spec}

    history: dict[str, list] = {k: [] for k in HISTORY_KEYS}
    start = 0
    if resume:
        ckpt = _resumable_checkpoint(out, config, task_spec, settings)
        params = ckpt.params
        opt_state = unflatten(jax.eval_shape(optimizer.init, params), ckpt.opt_state, "opt_state")
        start = ckpt.step
        history = _read_history(out, start)
        params, opt_state = jax.device_put((params, opt_state), replicated)
    else:
        params, opt_state = init_state(jax.random.key(seed))  # already replicated

    def save(step: int) -> Path:
        path = out / CHECKPOINT_DIR
        if writer:
            save_checkpoint(path, _local(params), config, task.tokenizer, step, _local(opt_state),
                            task=task_spec, meta=settings)  # fmt: skip
            _write_json(out / "metrics.json", _metrics(task_spec, config, settings, history))
        return path

    last_checkpoint: Path | None = None
    snapshots = [(start, jax.device_get(_local(params)))] if snapshot_every > 0 else []
    done, interrupted = start, False
    t_start = time.perf_counter()
    bar = tqdm(total=steps, initial=start, disable=not progress, desc=f"train {task.name}")
    try:
        for i in range(start, steps):
            tokens, loss_mask = task.batch(np.random.default_rng([seed, i]), batch_size)
            t0 = time.perf_counter()
            new_params, new_opt_state, loss, accuracy = step_fn(
                params, opt_state, _global_array(tokens, split), _global_array(loss_mask, split)
            )
            loss, accuracy = float(_local(loss)), float(_local(accuracy))  # waits for the step
            if not math.isfinite(loss):
                where = (
                    f"the last good checkpoint is {last_checkpoint} (step {done})"
                    if last_checkpoint
                    else "no checkpoint was saved before it"
                )
                raise TrainingDiverged(
                    f"training diverged: the loss is {loss} at step {i + 1}; {where}. "
                    f"Lower the learning rate (lr={lr}) or the gradient clip (clip={clip})"
                )
            # no function calls on this line, so Ctrl-C can't separate params from `done`
            params, opt_state, done = new_params, new_opt_state, i + 1
            step_time = time.perf_counter() - t0
            for key, value in zip(HISTORY_KEYS[:4], (done, loss, accuracy, step_time), strict=True):
                history[key].append(value)
            if eval_every and (done % eval_every == 0 or done == steps):
                history["eval_step"].append(done)
                history["exact_match"].append(task.evaluate(_local(params), config, n=eval_n))
            if snapshot_every > 0 and (done % snapshot_every == 0 or done == steps):
                snapshots.append((done, jax.device_get(_local(params))))
            bar.update(1)
            bar.set_postfix(_postfix(history))
            if out is not None and checkpoint_every and done % checkpoint_every == 0:
                last_checkpoint = save(done)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    if out is not None:
        last_checkpoint = save(done)
        if writer and history["step"]:
            from minitf.plots import plot_loss  # matplotlib only when figures are written

            plot_loss(history, out / "loss.png", title=_plot_title(task_spec))
    if interrupted and progress:
        where = f"; checkpoint saved to {last_checkpoint}" if last_checkpoint else ""
        tqdm.write(f"interrupted after step {done}{where}")
    return TrainResult(params, opt_state, history, time.perf_counter() - t_start, done,
                       interrupted, last_checkpoint, snapshots)  # fmt: skip


HISTORY_KEYS = ("step", "loss", "accuracy", "step_time", "eval_step", "exact_match")


def _postfix(history: dict) -> dict:
    shown = {"loss": f"{history['loss'][-1]:.4f}", "acc": f"{history['accuracy'][-1]:.3f}"}
    if history["exact_match"]:
        shown["exact"] = f"{history['exact_match'][-1]:.3f}"
    return shown


def _plot_title(task_spec: dict) -> str:
    spec = ", ".join(f"{k}={v}" for k, v in task_spec.items() if k != "name")
    return f"{task_spec['name']}({spec})\nthe loss drops in steps as each rule is learned"


def check_intervals(intervals: dict[str, int]) -> None:
    """Every-N-steps settings, by name: 0 means never, a negative number is a mistake.
    The CLI passes its flag names, so the message names what the user typed."""
    for name, every in intervals.items():
        if every < 0:
            raise ValueError(f"{name} must be 0 (never) or a positive number of steps; got {every}")


def _check_settings(config, task, steps, batch_size, lr, out, resume, intervals) -> None:
    if config.vocab_size < task.tokenizer.vocab_size or config.max_len < task.seq_len:
        raise ValueError(
            f"the model (vocab_size={config.vocab_size}, max_len={config.max_len}) is too "
            f"small for task {task.name}: it needs vocab_size >= {task.tokenizer.vocab_size} "
            f"and max_len >= {task.seq_len}; build it with minitf.tasks.config_for(task)"
        )
    if steps < 1 or batch_size < 1 or not lr > 0:
        raise ValueError(
            f"steps, batch_size and lr must be positive; got {steps}, {batch_size}, {lr}"
        )
    check_intervals(intervals)
    n_devices = jax.device_count()
    if jax.process_count() > 1 and batch_size % n_devices:
        raise ValueError(
            f"batch_size ({batch_size}) must be divisible by the number of devices "
            f"({n_devices}) so each gets an equal slice; try batch_size="
            f"{max(n_devices, batch_size // n_devices * n_devices)}"
        )
    if resume and out is None:
        raise ValueError("resume=True needs `out`, the folder of the run to continue")


def _resumable_checkpoint(out: Path, config: Config, task_spec: dict, settings: dict):
    ckpt = load_checkpoint(out / CHECKPOINT_DIR)
    if ckpt.opt_state is None:
        raise ValueError(f"{out / CHECKPOINT_DIR} has no optimizer state, so it can't resume")
    for what, now, then in (
        ("model config", config.to_dict(), ckpt.config.to_dict()),
        ("task", task_spec, ckpt.task),
        ("training settings", settings, {k: ckpt.meta.get(k) for k in settings}),
    ):
        if now != then:
            raise ValueError(
                f"can't resume {out}: its {what} was {then} but this run asks for {now}; "
                "resume with the same settings or train into a new --out folder"
            )
    return ckpt


def _read_history(out: Path, upto: int) -> dict[str, list]:
    """The history written with the checkpoint, cut to the steps the checkpoint has."""
    try:
        with open(out / "metrics.json", encoding="utf-8") as f:
            saved = json.load(f)["history"]
    except (OSError, ValueError, KeyError):
        return {k: [] for k in HISTORY_KEYS}  # the history is a record, not needed to resume
    history = {}
    for steps_key, keys in (("step", HISTORY_KEYS[:4]), ("eval_step", HISTORY_KEYS[4:])):
        keep = sum(1 for s in saved.get(steps_key, []) if s <= upto)
        history.update({k: list(saved.get(k, []))[:keep] for k in keys})
    return history


def _metrics(task_spec: dict, config: Config, settings: dict, history: dict) -> dict:
    return {"task": task_spec, "config": config.to_dict(), "settings": settings,
            "history": history}  # fmt: skip


def _write_json(path: Path, data: dict) -> None:
    """Write JSON through a temp file + rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)
