"""Lens over training: at which layer does the answer appear, and how does that change as
the model learns?

Trains an addition model with `minitf.train.train`, keeping a copy of the parameters
every `--every` steps, then runs the
logit lens on each copy over a fixed set of held-out problems (the whole problem fed in,
answer included, so every answer digit's prediction can be read). For each answer digit
it reports the first layer whose lens puts the right digit on top, averaged over the
problems (L + 1, "never", where not even the output gets it), and plots it against the
training step. Then, for the trained model, it writes the other lens figures: a lens
heatmap and a direct logit attribution for one problem, and logit vs tuned lens KL.

`train(snapshot_every=...)` keeps the snapshots. Checkpoint
folders of one run, if you have several, work too: `--checkpoints DIR [DIR ...]`.

    python experiments/lens_over_training.py                     # 3-digit, writes figures/
    python experiments/lens_over_training.py --digits 2 --steps 1000 --every 100

Left out: anything but addition-style tasks with a fixed answer length.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from minitf.attribution import direct_logit_attribution
from minitf.checkpoint import load_checkpoint
from minitf.lens import layer_names, lens_over_training, logit_lens
from minitf.model import Config, Params
from minitf.plots import plot_first_top1_layer
from minitf.tasks import Task, addition, config_for, make_task
from minitf.train import train
from minitf.tuned_lens import plot_lens_comparison, train_tuned_lens

FIGURES = Path(__file__).resolve().parents[1] / "figures"


def load_snapshots(folders: list[Path]) -> tuple[list[tuple[int, Params]], Config, Task]:
    """Checkpoint folders of one run -> (step, params) in step order, its config and task."""
    checkpoints = sorted((load_checkpoint(f) for f in folders), key=lambda c: c.step)
    first = checkpoints[0]
    if any(c.config != first.config or c.task != first.task for c in checkpoints):
        raise ValueError("the checkpoints come from different models or tasks; pass one run's")
    if not first.task:
        raise ValueError(f"{folders[0]} records no task, so there are no answers to look for")
    return [(c.step, c.params) for c in checkpoints], first.config, make_task(**first.task)


def write_lens_views(params: Params, config: Config, task: Task, folder: Path, seed: int = 0):
    """The other lens figures, for the trained model: a heatmap and a logit attribution for
    one held-out problem, and logit lens vs tuned lens KL per layer on training batches."""
    prompts, answers = task.problems(np.random.default_rng(seed + 1), 1, "test")  # (1, P), (1, A)
    tokens = np.concatenate([prompts[0], answers[0]])  # (T,)
    result = logit_lens(params, config, tokens, tokenizer=task.tokenizer)
    print(result.table(position=task.prompt_len - 1, k=3))
    plt.close(result.plot(folder / "lens_heatmap.png"))
    answer = int(answers[0, 0])  # the first answer digit, predicted after "="
    attribution = direct_logit_attribution(
        params, config, tokens, answer, task.prompt_len - 1, tokenizer=task.tokenizer
    )
    plt.close(attribution.plot(folder / "logit_attribution.png"))
    sequences, _ = task.batch(np.random.default_rng([seed, 10**6]), 512)  # (512, T)
    tuned, _ = train_tuned_lens(params, config, sequences, steps=300, seed=seed)
    plt.close(plot_lens_comparison(params, config, sequences, tuned, folder / "tuned_lens_kl.png"))
    print(f"wrote {folder}/lens_heatmap.png, logit_attribution.png, tuned_lens_kl.png")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--digits", type=int, default=3, help="addition digits (3, the demo)")
    parser.add_argument("--steps", type=int, default=2000, help="training steps (2000)")
    parser.add_argument("--every", type=int, default=200, help="snapshot every N steps (200)")
    parser.add_argument("--n", type=int, default=200, help="held-out problems to read (200)")
    parser.add_argument("--seed", type=int, default=0, help="seed for init and batches (0)")
    parser.add_argument("--checkpoints", type=Path, nargs="+", help="use these folders instead")
    parser.add_argument("--out", type=Path, default=FIGURES / "lens_over_training.png")
    args = parser.parse_args(argv)

    if args.checkpoints:
        snapshots, config, task = load_snapshots(args.checkpoints)
    else:
        task = addition(args.digits)
        # the demo's model: 2 layers, 4 heads, d_model 128 (minitf.cli.TRAIN_DEFAULTS)
        config = config_for(task, n_layer=2, n_head=4, d_model=128, d_mlp=512)
        snapshots = train(config, task, steps=args.steps, lr=1e-3, seed=args.seed,
                          snapshot_every=args.every).snapshots
    steps, first = lens_over_training(snapshots, config, task, n=args.n, seed=args.seed)
    mean_first = first.mean(axis=1)  # (C, A): mean over problems

    names = layer_names(config.n_layer)
    never = config.n_layer + 1
    print(f"first layer with the right answer digit on top (mean over {args.n} test problems; "
          f"0 = {names[0]}, l = {names[-1].split()[0]} l-1, {never} = never)")  # fmt: skip
    print("step   " + "  ".join(f"digit {a + 1}" for a in range(task.answer_len)) + "  solved")
    for step, row, per_problem in zip(steps, mean_first, first, strict=True):
        solved = np.mean(np.all(per_problem < never, axis=1))  # every digit right at the output
        print(f"{step:<6} " + "  ".join(f"{x:7.2f}" for x in row) + f"  {solved:6.1%}")

    print(f"\nat step {steps[-1]}: share of problems whose answer digit first tops the lens at")
    print("digit  " + "  ".join(f"{name:>8}" for name in [*names, "never"]))
    for a in range(task.answer_len):
        shares = np.bincount(first[-1, :, a], minlength=never + 1) / args.n  # (L+2,)
        print(f"{a + 1:<6} " + "  ".join(f"{share:8.1%}" for share in shares))

    curves = {f"answer digit {a + 1}": mean_first[:, a] for a in range(task.answer_len)}
    fig = plot_first_top1_layer(steps, curves, names, args.out)
    plt.close(fig)
    print(f"wrote {args.out}")
    write_lens_views(snapshots[-1][1], config, task, args.out.parent, seed=args.seed)


if __name__ == "__main__":
    main()
