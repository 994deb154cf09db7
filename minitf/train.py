"""The training loop: masked next-token loss, AdamW, checkpoints, data parallel.

One step: draw a batch from the task, compute the cross-entropy of the model's next-token
predictions on the scored tokens only (the loss mask), take its gradient, clip it, and
let AdamW (linear warmup, then cosine decay of the learning rate) update the parameters.
`make_step` turns any loss into that step as one `jax.jit` call; the training loop, the
fine-tuning of new tokens (`minitf.surgery`) and the tuned lens all use it. Every setting
of a run is one frozen `TrainConfig`. Batch i is drawn from `np.random.default_rng([seed,
i])`, so a run that stops and resumes from a checkpoint sees exactly the batches an
uninterrupted run sees and ends with bit-identical parameters.

Anything with `name`, `spec`, `tokenizer`, `seq_len`, `batch(rng, batch_size)` and
`evaluate(params, config, n=...)` can be trained (`Trainable`): the toy tasks of
`minitf.tasks`, text (`minitf.text`), the toy language of the course. The loop never
knows which it has: a task names its own metric (exact match, or a validation loss).

Data parallel: the batch is split across `jax.devices()` along a one-axis mesh named
"batch" and the parameters are replicated; the jitted step is written as if for one
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
checkpoints, metrics and figures (point `out` at a shared file system to resume). At the
start the hosts compare a hash of their settings, data and starting parameters and
refuse to train different "replicated" models; when a host dies, the others stop with
`PeerLost`, a sentence naming the last checkpoint (docs/multihost.md tries it on one
machine with `minitf train --coordinator`).

Nothing is lost: `out` is claimed by one run at a time and a folder holding a run is not
overwritten unless asked (`minitf.run_folder`); checkpoints are crash-safe
(`minitf.checkpoint`); metrics.json is written before each checkpoint, so the history
always covers the checkpoint; a step whose loss or new parameters are not finite stops
the run before anything is saved from it; Ctrl-C stops after the current step and saves.

Left out: gradient accumulation, mixed precision, model (tensor) parallelism.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from minitf import faults, interrupts
from minitf.checkpoint import (
    CHECKPOINT_DIR,
    Checkpoint,
    has_checkpoint,
    load_checkpoint,
    save_checkpoint,
    unflatten,
    write_json,
)
from minitf.hosts import PeerLost, agree_across_hosts, all_ready
from minitf.memory import check_memory, count_params_of
from minitf.model import Config, Params, forward, init_params
from minitf.run_folder import METRICS, claim
from minitf.tokens import TokenizerLike

__all__ = [
    "TrainConfig",
    "TrainResult",
    "Trainable",
    "TrainingDiverged",
    "PeerLost",
    "Checkpoint",
    "load_checkpoint",
    "save_checkpoint",
    "loss_fn",
    "make_optimizer",
    "make_step",
    "data_mesh",
    "check_model_fits",
    "train",
]

MAX_LR = 1.0  # Adam moves every weight by about lr per step; the weights start near 0.02
MAX_STEPS = 2**31 - 1  # optax counts steps in int32
MAX_EVAL_N = 1_000_000  # a million problems pin exact match down to 0.1%; more only takes time


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run. The `minitf train` flags, the per-task defaults
    (`minitf.tasks.train_defaults`), a checkpoint's record and the resume check all use
    this one object. Frozen: it can be a dict key and a static argument to `jax.jit`."""

    steps: int = 1000  # optimizer steps in all
    batch_size: int = 128  # sequences (problems) per step
    lr: float = 1e-3  # peak learning rate, reached after the warmup
    warmup: int | None = None  # steps of linear warmup from 0; None: 5% of the steps
    lr_end: float | None = None  # learning rate at the last step (cosine decay); None: lr / 10
    weight_decay: float = 0.1  # AdamW's decay of the weight matrices
    beta2: float = 0.98  # Adam's second-moment decay (nanoGPT uses 0.99 on text)
    clip: float = 1.0  # largest global gradient norm; larger gradients are scaled down
    seed: int = 0  # initial parameters and every batch
    eval_every: int = 0  # measure the task's metric every N steps (0: never)
    eval_n: int = 500  # problems (or validation windows) per measurement
    checkpoint_every: int = 0  # save out/checkpoint every N steps (0: only at the end)

    def __post_init__(self) -> None:
        positive = {"steps": self.steps, "batch_size": self.batch_size, "eval_n": self.eval_n}
        for name, value in positive.items():
            if not _is_int(value) or value < 1:
                raise ValueError(f"{name} must be positive (a whole number); got {value!r}")
        if self.steps > MAX_STEPS:
            raise ValueError(f"steps must be at most {MAX_STEPS:,} (optax counts steps in "
                             f"32 bits); got {self.steps:,}")  # fmt: skip
        check_eval_n(self.eval_n, "eval_n")
        for name in ("eval_every", "checkpoint_every"):
            check_every(name, getattr(self, name))
        check_seed(self.seed)
        if self.warmup is not None and (not _is_int(self.warmup) or not 0 <= self.warmup
                                        < max(self.steps, 1)):  # fmt: skip
            raise ValueError(f"warmup must be a number of steps from 0 to steps - 1 "
                             f"({self.steps - 1}): the cosine decay needs a step; got "
                             f"{self.warmup!r}")  # fmt: skip
        for name in ("lr", "clip"):
            value = getattr(self, name)
            if not _is_real(value) or not value > 0:
                raise ValueError(f"{name} must be a positive finite number; got {value!r}")
        if self.lr > MAX_LR:
            raise ValueError(f"lr must be at most {MAX_LR}: Adam moves every weight by about "
                             f"lr per step and the weights start near 0.02; got {self.lr!r}")
        if self.lr_end is not None and (not _is_real(self.lr_end) or self.lr_end < 0):
            raise ValueError(f"lr_end must be a finite number >= 0; got {self.lr_end!r}")
        if not _is_real(self.weight_decay) or self.weight_decay < 0:
            raise ValueError(f"weight_decay must be a finite number >= 0; got "
                             f"{self.weight_decay!r}")  # fmt: skip
        if self.lr * self.weight_decay >= 1:
            raise ValueError(f"weight_decay must be below 1 / lr ({1 / self.lr:g}): each step "
                             f"multiplies the weights by 1 - lr * weight_decay; got "
                             f"{self.weight_decay!r}")  # fmt: skip
        if not _is_real(self.beta2) or not 0 < self.beta2 < 1:
            raise ValueError(f"beta2 must be between 0 and 1; got {self.beta2!r}")

    @property
    def warmup_steps(self) -> int:
        """`warmup`, or 5% of the steps (at least 1, and fewer than the steps)."""
        if self.warmup is not None:
            return self.warmup
        return min(max(1, self.steps // 20), self.steps - 1)

    def optimizer_fields(self) -> dict:
        """The settings that decide the parameters a run ends with (a resumed run must
        match them); evaluation and checkpoint intervals don't."""
        skip = {"eval_every", "eval_n", "checkpoint_every"}
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {name: value for name, value in fields.items() if name not in skip}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool) and \
        math.isfinite(value)  # fmt: skip


def check_every(name: str, every: int) -> None:
    """An every-N-steps setting: 0 means never, a negative number is a mistake."""
    if not _is_int(every) or every < 0:
        raise ValueError(f"{name} must be 0 (never) or a positive number of steps; got {every!r}")


def check_eval_n(n: int, name: str = "n") -> None:
    """How many problems an evaluation measures: 1 to MAX_EVAL_N (training, `minitf eval`)."""
    if not _is_int(n) or not 1 <= n <= MAX_EVAL_N:
        raise ValueError(f"{name} must be a number of problems from 1 to {MAX_EVAL_N:,}; "
                         f"got {n!r}")  # fmt: skip


def check_seed(seed: int, name: str = "seed") -> None:
    """A seed is a whole number from 0 to 2**32 - 1 (what numpy and jax both accept)."""
    if not _is_int(seed) or not 0 <= seed < 2**32:
        raise ValueError(f"{name} must be a whole number from 0 to 2**32 - 1; got {seed!r}")


class Trainable(Protocol):
    """What `train` needs from a task (toy tasks, the course's toy language, text).

    Optional: `metric`, the name of what `evaluate` returns ("exact_match" when absent; a
    name ending in "loss" means lower is better), and `checkpoint_data()`, arrays that
    its checkpoints should carry (a text task's validation tokens).
    """

    name: str  # e.g. "addition": the task's name in a checkpoint
    spec: dict  # its settings: with `name`, enough to rebuild it
    tokenizer: TokenizerLike
    # tokens in one training sequence; the model reads all but the last, so its max_len
    # must be at least seq_len - 1
    seq_len: int

    def batch(self, rng: np.random.Generator, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """tokens (B, T) int32 and loss_mask (B, T) bool: True where the NEXT token is scored."""
        ...

    def evaluate(self, params: Params, config: Config, *, n: int) -> float:
        """The task's measure of a model (exact match for toy tasks, validation loss for text)."""
        ...


def task_metric(task: Trainable) -> str:
    """The name of what `task.evaluate` returns, the key of its values in the history."""
    return getattr(task, "metric", "exact_match")


class TrainingDiverged(ValueError):
    """The loss or the parameters became NaN or infinite: training can't continue."""


@dataclasses.dataclass
class TrainResult:
    """What `train` returns."""

    params: Params  # final parameters (replicated over the devices)
    opt_state: optax.OptState  # final optimizer state
    history: dict[str, list]  # step, loss, accuracy, step_time; eval_step and the task's
    # metric (exact_match, val_loss) at those steps
    seconds: float  # wall time of this call, JIT compilation included
    step: int  # steps done in total (counting those before a resume)
    interrupted: bool = False  # True when Ctrl-C (or the callback) stopped the run early
    checkpoint: Path | None = None  # the last checkpoint written, if any


# --- the loss, the optimizer and one step --------------------------------------------------


def loss_fn(
    params: Params, tokens: jax.Array, loss_mask: jax.Array, config: Config
) -> tuple[jax.Array, jax.Array]:
    """Mean cross-entropy over the scored tokens, and the fraction of them predicted right.

    [B, T] tokens, [B, T] loss_mask (True where the NEXT token is scored) -> two scalars.
    The lesson "Next-token training" builds it from its three steps: the shift by one,
    the mask, the mean.
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


def make_optimizer(settings: TrainConfig) -> optax.GradientTransformation:
    """Clip the gradient's global norm, then AdamW with linear warmup + cosine decay.

    Weight decay applies to matrices only: decaying biases and layer-norm scales towards
    zero would only fight the normalisation (nanoGPT does the same). Used in the lesson
    "Next-token training"; the lesson "Grokking" shows what weight decay does after a
    model has memorised.
    """
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=settings.lr,
        warmup_steps=settings.warmup_steps,
        decay_steps=settings.steps,
        end_value=settings.lr / 10 if settings.lr_end is None else settings.lr_end,
    )
    matrices_only = lambda params: jax.tree.map(lambda x: x.ndim >= 2, params)  # noqa: E731
    adamw = optax.adamw(schedule, b1=0.9, b2=settings.beta2,
                        weight_decay=settings.weight_decay, mask=matrices_only)  # fmt: skip
    return optax.chain(optax.clip_by_global_norm(settings.clip), adamw)


def make_step(
    loss: Callable[..., tuple[jax.Array, Any]],
    optimizer: optax.GradientTransformation,
    mesh: Mesh | None = None,
) -> Callable:
    """One optimizer step as one jitted call: step(params, opt_state, batch) ->
    (params, opt_state, loss, aux), for `loss(params, *batch) -> (scalar, aux)`.

    The gradient is taken with respect to `params` only, so `batch` may also carry
    frozen arrays (the tuned lens passes the model's weights there). With a `mesh`, the
    batch is split along its "batch" axis over the devices and everything else is
    replicated. No buffer donation: the old parameters must survive a Ctrl-C in the
    middle of a step (and with jax 0.10.2 donation plus the cross-device all-reduce
    deadlocked on a 2-core CPU). The lesson "Next-token training" writes one by hand.
    """

    def step(params, opt_state, batch):
        (value, aux), grads = jax.value_and_grad(loss, has_aux=True)(params, *batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value, aux

    if mesh is None:
        return jax.jit(step)
    replicated = NamedSharding(mesh, PartitionSpec())
    split = NamedSharding(mesh, PartitionSpec("batch"))
    return jax.jit(step, in_shardings=(replicated, replicated, split),
                   out_shardings=replicated)  # fmt: skip


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
def _compiled(config: Config, settings: TrainConfig, mesh: Mesh):
    """The optimizer, the jitted initial state and the jitted step of a run, built once per
    (model, optimizer settings, mesh), so that calling `train` again with the same settings
    (resuming, tests, lessons) reuses them. `settings` comes with its intervals zeroed."""
    optimizer = make_optimizer(settings)

    def init_state(key: jax.Array) -> tuple[Params, optax.OptState]:
        """Fresh parameters and the optimizer's (zero) state for them."""
        params = init_params(config, key)
        return params, optimizer.init(params)

    # jit: one compiled program instead of dozens of small eager ones (seconds on a CPU)
    init_state = jax.jit(init_state, out_shardings=NamedSharding(mesh, PartitionSpec()))
    step = make_step(functools.partial(loss_fn, config=config), optimizer, mesh)
    return optimizer, init_state, step


def check_model_fits(config: Config, task: Trainable) -> None:
    """A ValueError, saying how to fix it, when the model is too small for the task."""
    reads = task.seq_len - 1  # the last token of a sequence is only ever a target
    if config.vocab_size < task.tokenizer.vocab_size or config.max_len < reads:
        raise ValueError(
            f"the model (vocab_size={config.vocab_size}, max_len={config.max_len}) is too "
            f"small for task {task.name}: it needs vocab_size >= {task.tokenizer.vocab_size} "
            f"and max_len >= {reads}; build it with minitf.tasks.config_for(task)"
        )


# --- the loop ------------------------------------------------------------------------------


def train(
    config: Config,
    task: Trainable,
    settings: TrainConfig | None = None,
    *,
    out: str | os.PathLike | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    callback: Callable[[int, Params], bool | None] | None = None,
    **fields: Any,
) -> TrainResult:
    """Train a fresh model (or resume one from `out`) on a task; returns a TrainResult.

    `settings` is a TrainConfig; keyword arguments override its fields (`train(config,
    task, steps=100, lr=3e-3)` works without one). With `out`, writes out/checkpoint/
    every `checkpoint_every` steps and at the end, plus metrics.json and loss.png; a
    folder that already holds a run is refused unless `resume` continues it or
    `overwrite` starts it over. `callback(step, params)` runs before the first step and
    after every step; returning True stops the run (the lesson "The logit lens" keeps
    snapshots of the parameters with it). Ctrl-C saves a checkpoint and returns with
    `interrupted=True`. The lesson "Next-token training" walks through it.
    """
    unknown = sorted(set(fields) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:
        raise ValueError(f"train() has no setting {unknown}; the settings are TrainConfig's "
                         f"fields: {[f.name for f in dataclasses.fields(TrainConfig)]}")
    settings = dataclasses.replace(settings or TrainConfig(), **fields)
    check_model_fits(config, task)
    if resume and out is None:
        raise ValueError("resume=True needs `out`, the folder of the run to continue")
    if resume and overwrite:
        raise ValueError("--resume continues the run in --out and --overwrite starts it "
                         "over; give one of them")  # fmt: skip
    out = Path(out) if out is not None else None
    with contextlib.ExitStack() as claimed:
        problem = None
        try:  # the checks each process makes before any work
            check_memory(config, settings.batch_size, task.seq_len)
            if resume and not has_checkpoint(out / CHECKPOINT_DIR):  # before making a folder
                raise FileNotFoundError(f"no checkpoint to resume in {out} (it has no "
                                        f"{CHECKPOINT_DIR}/); train one there first, without "
                                        "--resume")  # fmt: skip
            if out is not None and jax.process_index() == 0:  # only process 0 writes
                checkpoint_bytes = 4 * 3 * count_params_of(config)  # params, Adam's moments
                claimed.enter_context(claim(out, resume=resume, overwrite=overwrite,
                                            needs_bytes=2 * checkpoint_bytes))  # fmt: skip
        except (ValueError, OSError) as err:
            problem = err
        if jax.process_count() > 1:
            all_ready(problem is None)  # so that no process waits for one that gave up
        if problem is not None:
            raise problem
        return _train(config, task, settings, out, resume, progress, callback)


@dataclasses.dataclass(frozen=True)
class _Saved:
    """A checkpoint on disk: where, and after how many steps."""

    path: Path
    step: int


def _train(config: Config, task: Trainable, settings: TrainConfig, out: Path | None,
           resume: bool, progress: bool, callback) -> TrainResult:  # fmt: skip
    mesh = data_mesh(_check_devices(settings.batch_size))
    split = NamedSharding(mesh, PartitionSpec("batch"))
    _, init_state, step_fn = _compiled(config, _without_intervals(settings), mesh)
    task_spec = {"name": task.name, **task.spec}
    if resume:
        params, opt_state, start, history = _resume(out, config, task, task_spec, settings, mesh)
        saved = _Saved(out / CHECKPOINT_DIR, start)
    else:
        params, opt_state = init_state(jax.random.key(settings.seed))  # placed replicated
        start, history, saved = 0, {k: [] for k in history_keys(task)}, None
    record = _Record(out, config, task, task_spec, settings, history)
    batch_of = lambda i: task.batch(np.random.default_rng([settings.seed, i]),  # noqa: E731
                                    settings.batch_size)  # fmt: skip
    if jax.process_count() > 1:
        agree_across_hosts(config, task_spec, settings, resume, batch_of(start), _local(params))

    done, lost, ctrl_c = start, None, False
    t_start = time.perf_counter()
    bar = tqdm(total=settings.steps, initial=start, desc=f"train {task.name}",
               disable=not progress or jax.process_index() != 0)  # fmt: skip
    try:
        stop = callback is not None and callback(start, params)
        for i in range(start, settings.steps):
            if stop or interrupts.requested():
                break
            batch = batch_of(i)
            t0 = time.perf_counter()
            try:
                new_params, new_opt_state, loss, accuracy = step_fn(
                    params, opt_state, tuple(_global_array(x, split) for x in batch)
                )
                loss, accuracy = float(_local(loss)), float(_local(accuracy))  # waits
                finite = bool(_local(_all_finite(new_params)))
            except jax.errors.JaxRuntimeError as err:
                if jax.process_count() == 1:
                    raise
                lost = err  # a collective failed: another host is gone
                break
            if not (finite and math.isfinite(loss)):
                raise _diverged(loss, finite, i + 1, saved, settings)
            # no function calls on this line, so Ctrl-C can't separate params from `done`
            params, opt_state, done = new_params, new_opt_state, i + 1
            faults.point(f"after-step-{done}")
            record.step(done, loss, accuracy, time.perf_counter() - t0, params)
            bar.update(1)
            bar.set_postfix(record.postfix())
            if settings.checkpoint_every and done % settings.checkpoint_every == 0:
                saved = record.save(done, params, opt_state) or saved
            stop = callback is not None and callback(done, params)
    except KeyboardInterrupt:  # no handler installed (a notebook, a script): Python's own
        ctrl_c = True
    finally:
        bar.close()
    # save the steps no checkpoint has yet; after a lost host only process 0 can (and it
    # does: its parameters are those of the last step every host finished)
    if done > (saved.step if saved else 0) and (lost is None or jax.process_index() == 0):
        saved = record.save(done, params, opt_state) or saved
    if lost is not None:
        raise PeerLost(_peer_lost_message(done, saved, lost))
    if done > start:
        record.plot()
    result = TrainResult(params, opt_state, record.history, time.perf_counter() - t_start,
                         done, done < settings.steps, saved.path if saved else None)  # fmt: skip
    if ctrl_c and progress and jax.process_index() == 0:  # the `minitf` command says it itself
        tqdm.write(interrupted_message(result))
    return result


def interrupted_message(result: TrainResult) -> str:
    """One sentence: where an interrupted run stopped and how to continue it."""
    if result.checkpoint is None:
        return f"interrupted after step {result.step}; nothing was saved"
    return (f"interrupted after step {result.step}; the checkpoint is in {result.checkpoint} "
            "(continue with --resume, or resume=True in Python)")  # fmt: skip


@jax.jit
def _all_finite(tree) -> jax.Array:
    """True when every number in the tree is finite (no NaN, no inf)."""
    return jnp.all(jnp.stack([jnp.isfinite(x).all() for x in jax.tree.leaves(tree)]))


STEP_KEYS = ("step", "loss", "accuracy", "step_time")  # one value per step


def history_keys(task: Trainable) -> tuple[str, ...]:
    """The lists of a run's history: per step, then per evaluation (its step, the metric)."""
    return (*STEP_KEYS, "eval_step", task_metric(task))


@dataclasses.dataclass
class _Record:
    """A run's history, and writing it: checkpoints, metrics.json and loss.png under `out`
    (on process 0 only; with `out=None` nothing is written)."""

    out: Path | None
    config: Config
    task: Trainable
    task_spec: dict
    settings: TrainConfig
    history: dict[str, list]

    def step(self, done: int, loss: float, accuracy: float, seconds: float, params) -> None:
        """Note one finished step, and measure the task every `eval_every` steps."""
        for key, value in zip(STEP_KEYS, (done, loss, accuracy, seconds), strict=True):
            self.history[key].append(value)
        every = self.settings.eval_every
        if every and (done % every == 0 or done == self.settings.steps):
            self.history["eval_step"].append(done)
            score = self.task.evaluate(_local(params), self.config, n=self.settings.eval_n)
            self.history[task_metric(self.task)].append(score)

    def postfix(self) -> dict:
        shown = {"loss": f"{self.history['loss'][-1]:.4f}",
                 "acc": f"{self.history['accuracy'][-1]:.3f}"}  # fmt: skip
        metric = task_metric(self.task)
        if self.history[metric]:
            short = {"exact_match": "exact", "val_loss": "val"}.get(metric, metric)
            shown[short] = f"{self.history[metric][-1]:.3f}"
        return shown

    def save(self, done: int, params, opt_state) -> _Saved | None:
        """Write metrics.json, then the checkpoint.

        In that order, a kill between the two leaves a history that covers the
        checkpoint, and resuming cuts it back to the checkpoint's step.
        """
        if self.out is None:
            return None
        saved = _Saved(self.out / CHECKPOINT_DIR, done)
        if jax.process_index() != 0:  # on several hosts only the first one writes files
            return saved
        metrics = {"task": self.task_spec, "config": self.config.to_dict(),
                   "settings": self.settings.to_dict(), "history": self.history}  # fmt: skip
        write_json(self.out / METRICS, metrics)
        meta = {"train": self.settings.to_dict()}
        data = self.task.checkpoint_data() if hasattr(self.task, "checkpoint_data") else None
        save_checkpoint(saved.path, _local(params), self.config, self.task.tokenizer, done,
                        _local(opt_state), task=self.task_spec, meta=meta, data=data)  # fmt: skip
        return saved

    def plot(self) -> None:
        """The loss curve, out/loss.png (at the end of a run)."""
        if self.out is None or jax.process_index() != 0 or not self.history["step"]:
            return
        from minitf.plots import plot_loss  # matplotlib only when figures are written

        # the task's scalar settings (a text task's corpus record is left out)
        spec = ", ".join(f"{k}={v}" for k, v in self.task_spec.items()
                         if k != "name" and not isinstance(v, dict))  # fmt: skip
        lower_is_better = task_metric(self.task).endswith("loss")
        what = ("training and validation loss" if lower_is_better
                else "the loss drops in steps as each rule is learned")  # fmt: skip
        plot_loss(self.history, self.out / "loss.png", title=f"{self.task.name}({spec})\n{what}")


def _without_intervals(settings: TrainConfig) -> TrainConfig:
    """The settings with what doesn't shape the step zeroed, so one compiled step serves
    runs that differ only in how often they evaluate or save."""
    return dataclasses.replace(settings, seed=0, eval_every=0, eval_n=1, checkpoint_every=0)


def _check_devices(batch_size: int) -> int:
    n_devices = jax.device_count()
    if jax.process_count() > 1 and batch_size % n_devices:
        raise ValueError(
            f"batch_size ({batch_size}) must be divisible by the number of devices "
            f"({n_devices}) so each gets an equal slice; try batch_size="
            f"{max(n_devices, batch_size // n_devices * n_devices)}"
        )
    return batch_size


def _global_array(x: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """Place a host array as one global array: each device (on any host) gets its slice."""
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def _local(tree):
    """Replicated arrays -> numpy copies from this host (works on several hosts too)."""
    return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), tree)


def _diverged(loss: float, params_finite: bool, step: int, saved: _Saved | None,
              settings: TrainConfig) -> TrainingDiverged:  # fmt: skip
    what = f"the loss is {loss}" if not math.isfinite(loss) else \
        f"the parameters became NaN or infinite (the loss was {loss:.4g})"  # fmt: skip
    where = (f"the last good checkpoint is {saved.path} (step {saved.step})" if saved
             else "no checkpoint was saved before it")  # fmt: skip
    return TrainingDiverged(
        f"training diverged: {what} at step {step}; {where}. Lower the learning rate "
        f"(lr={settings.lr}) or the gradient clip (clip={settings.clip})"
    )


def _peer_lost_message(done: int, saved: _Saved | None, err: Exception) -> str:
    if saved is None:
        where = "no checkpoint was saved"
    elif jax.process_index() == 0:
        where = (f"the last checkpoint is {saved.path} (step {saved.step}): start every "
                 "process again with --resume")  # fmt: skip
    else:  # process 0 writes the checkpoints, and it may be the process that stopped
        where = (f"the last checkpoint is the one process 0 saved in {saved.path} (step "
                 f"{saved.step}, or an earlier one if process 0 stopped first): start every "
                 "process again with --resume")  # fmt: skip
    first_line = str(err).strip().splitlines()[0][:200]
    return (f"process {jax.process_index()} of {jax.process_count()} lost contact with the "
            f"others after step {done} (another process stopped or crashed; see its "
            f"output); {where}. The error was: {first_line}")  # fmt: skip


# --- resuming ----------------------------------------------------------------------------


def _resume(out: Path, config: Config, task: Trainable, task_spec: dict, settings: TrainConfig,
            mesh: Mesh):  # fmt: skip
    """-> params, opt_state (placed replicated), the step to go on from, and the history."""
    ckpt = load_checkpoint(out / CHECKPOINT_DIR)
    if ckpt.opt_state is None:
        raise ValueError(f"{out / CHECKPOINT_DIR} has no optimizer state, so it can't resume")
    saved = ckpt.meta.get("train", {})
    # name each setting that differs, e.g. "lr=0.001 (now 0.002)"
    differ = [f"{name}={saved.get(name)!r} (now {value!r})"
              for name, value in settings.optimizer_fields().items()
              if saved.get(name) != value]  # fmt: skip
    for was, now, prefix in ((ckpt.config.to_dict(), config.to_dict(), ""),
                             (ckpt.task or {}, task_spec, "task ")):  # fmt: skip
        differ += [f"{prefix}{name}={was.get(name)!r} (now {now.get(name)!r})"
                   for name in sorted(set(was) | set(now)) if was.get(name) != now.get(name)]
    if differ:
        raise ValueError(
            f"can't resume {out}: it was trained with other settings: {', '.join(differ)}; "
            "resume with the same settings or train into a new --out folder"
        )
    optimizer = make_optimizer(settings)
    opt_state = unflatten(jax.eval_shape(optimizer.init, ckpt.params), ckpt.opt_state, "opt_state")
    replicated = NamedSharding(mesh, PartitionSpec())
    params, opt_state = jax.device_put((ckpt.params, opt_state), replicated)
    return params, opt_state, ckpt.step, _read_history(out, ckpt.step, history_keys(task))


def _read_history(out: Path, upto: int, all_keys: tuple[str, ...]) -> dict[str, list]:
    """The history written with the checkpoint, cut to the steps the checkpoint has.

    No metrics.json: an empty history. A damaged one is refused rather than replaced,
    which would throw the record of the first `upto` steps away.
    """
    path = out / METRICS
    if not path.exists():
        return {k: [] for k in all_keys}
    try:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)["history"]
        if not all(isinstance(saved[k], list) for k in all_keys):
            raise ValueError("a history entry is not a list")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"can't resume {out}: {path} is damaged ({err!r}), and resuming would replace the "
            f"record of its first {upto} steps; restore it, or move it aside to resume "
            "without the history"
        ) from None
    history = {}
    n_step = len(STEP_KEYS)
    for steps_key, keys in (("step", all_keys[:n_step]), ("eval_step", all_keys[n_step:])):
        keep = sum(1 for s in saved[steps_key] if s <= upto)
        history.update({k: list(saved[k])[:keep] for k in keys})
    return history
