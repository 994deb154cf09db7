"""How many fine-tuning steps does a new token need, depending on how its rows start?

Train a small model to sort digits (`4721=1247`), then add a token it has never seen,
`h`, meaning "four and a half": it sorts between 4 and 5. Only the new token's rows of
the embedding and unembedding are trained (everything else frozen), on problems that
contain `h`, until greedy answers are right on 90% of held-out problems with `h`.
Inits compared: "mean" of all rows, "random" N(0, 0.02), and the combination
0.5 * `4` + 0.5 * `5`, which starts the token where its meaning says it belongs.

    python experiments/new_token_init.py            # about a minute on 2 CPU cores
    python experiments/new_token_init.py --quick    # a shorter check

Writes figures/new_token_init.png and prints a table. Deterministic for a given --seed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import matplotlib
import numpy as np

from minitf.surgery import add_tokens, finetune
from minitf.tasks import config_for, greedy_answers, sort
from minitf.train import train

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FIGURES = Path(__file__).resolve().parents[1] / "figures"
LENGTH = 5  # digits per problem
NEW = "h"  # the new token
NEW_VALUE = 4.5  # what it means: it sorts between 4 and 5
INITS = {
    "mean": "mean",
    "random": "random",
    "0.5*'4' + 0.5*'5'": {"4": 0.5, "5": 0.5},
}
TARGET = 0.9  # exact match that counts as "learned"


def problems_with_new_token(rng: np.random.Generator, n: int, new_id: int):
    """Sort problems where each digit is `h` with probability 1/4 (at least one `h`).

    -> tokens (n, 2L+1) and loss_mask (n, 2L+1), the `minitf.tasks` layout.
    """
    values = rng.integers(0, 10, (n, LENGTH)).astype(float)  # (n, L)
    is_new = rng.random((n, LENGTH)) < 0.25  # (n, L)
    is_new[np.arange(n), rng.integers(0, LENGTH, n)] = True  # (n, L): at least one h
    values = np.where(is_new, NEW_VALUE, values)  # (n, L)
    ids = np.where(values == NEW_VALUE, new_id, values).astype(np.int32)  # (n, L)
    answer = np.take_along_axis(ids, np.argsort(values, axis=1, kind="stable"), 1)  # (n, L)
    equals = np.full((n, 1), 10, np.int32)  # (n, 1): "=" is id 10 in the sort tokenizer
    tokens = np.concatenate([ids, equals, answer], axis=1)  # (n, 2L+1)
    position = np.arange(tokens.shape[1])  # (2L+1,)
    scored = (position >= LENGTH) & (position < tokens.shape[1] - 1)  # (2L+1,)
    return tokens, np.broadcast_to(scored[None], tokens.shape).copy()


def batches(seed: int, new_id: int, batch_size: int = 64):
    rng = np.random.default_rng(seed)
    while True:
        yield problems_with_new_token(rng, batch_size, new_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and seeds")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    args = parser.parse_args()
    base_steps, max_steps, n_seeds = (500, 300, 1) if args.quick else (900, 600, 3)
    t_start = time.perf_counter()

    task = sort(LENGTH)
    config = config_for(task, n_layer=2, n_head=4, d_model=64, d_mlp=256)
    base = train(config, task, steps=base_steps, batch_size=64, lr=3e-3, seed=args.seed,
                 progress=False)  # fmt: skip
    base_acc = task.evaluate(base.params, config, n=500)
    print(f"base model: sort {LENGTH} digits, exact match {base_acc:.3f} after {base_steps} steps")

    new_id = task.tokenizer.vocab_size  # 11
    test_tokens, _ = problems_with_new_token(np.random.default_rng(10**6), 500, new_id)
    prompts, answers = test_tokens[:, : LENGTH + 1], test_tokens[:, LENGTH + 1 :]  # (n, P), (n, A)

    steps_to_learn: dict[str, list[int | None]] = {name: [] for name in INITS}
    curves: dict[str, tuple[list[int], list[float]]] = {}
    for name, init in INITS.items():
        for s in range(n_seeds):
            seed = args.seed + s
            params, new_config, _ = add_tokens(
                base.params, config, task.tokenizer, [NEW], init, key=jax.random.key(seed)
            )
            checks: tuple[list[int], list[float]] = ([], [])

            def learned(step, params, new_config=new_config, checks=checks) -> bool:
                predicted = np.asarray(greedy_answers(params, prompts, new_config, LENGTH))
                accuracy = float(np.all(predicted == answers, axis=1).mean())
                checks[0].append(step)
                checks[1].append(accuracy)
                return accuracy >= TARGET

            result = finetune(
                params, new_config, batches(seed, new_id), steps=max_steps, lr=1e-2,
                only_rows=[new_id], callback=learned, check_every=10,
            )  # fmt: skip
            reached = checks[1][-1] >= TARGET
            steps_to_learn[name].append(result.steps if reached else None)
            if s == 0:
                curves[name] = checks

    seeds = f"{args.seed}..{args.seed + n_seeds - 1}"
    print(f"\nsteps until {TARGET:.0%} exact match on problems with the new token {NEW!r}")
    print(f"(only its rows train; at most {max_steps} steps; seeds {seeds})")
    print(f"{'init':<22} {'accuracy at step 0':>18} {'steps per seed':>20} {'mean':>6}")
    for name, found in steps_to_learn.items():
        shown = ", ".join("never" if s is None else str(s) for s in found)
        done = [s for s in found if s is not None]
        mean = f"{np.mean(done):.0f}" if len(done) == len(found) else "-"
        print(f"{name:<22} {curves[name][1][0]:>18.3f} {shown:>20} {mean:>6}")

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=120)
    for name, (steps, accuracy) in curves.items():
        left.plot(steps, accuracy, marker=".", label=name)
    left.axhline(TARGET, color="gray", linestyle="--", linewidth=0.8)
    left.set_xlabel("fine-tuning step (only the new token's rows train)")
    left.set_ylabel(f"exact match, problems containing {NEW!r}")
    left.set_ylim(-0.02, 1.02)
    left.legend()
    left.set_title(f"seed {args.seed}: accuracy while the new token {NEW!r} is learned", fontsize=9)
    names = list(steps_to_learn)
    for i, name in enumerate(names):
        found = [max_steps if s is None else s for s in steps_to_learn[name]]
        right.scatter([i] * len(found), found, color=f"C{i}", zorder=3)
        right.bar(i, np.mean(found), color=f"C{i}", alpha=0.4)
    right.set_xticks(range(len(names)), names)
    right.set_ylabel(f"steps to {TARGET:.0%} exact match (dots: seeds; {max_steps} = never)")
    right.set_title("Where a new token starts decides how long it takes to learn", fontsize=9)
    fig.suptitle(
        f"A new token {NEW!r} = 4.5 in a digit-sorting model: starting it between '4' and "
        "'5' (what it means) beats the mean or a random row",
        fontsize=10,
    )
    fig.tight_layout()
    FIGURES.mkdir(exist_ok=True)
    path = FIGURES / "new_token_init.png"
    fig.savefig(path)
    print(f"\nwrote {path}; {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
