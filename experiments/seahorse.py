"""The seahorse effect, in miniature, and its fix.

Large language models asked for "the seahorse emoji" (Unicode has none) confidently
produce a horse or a tropical fish: the model builds a "seahorse + emoji" vector, and the
lm_head can only answer with the nearest token that exists. Here the same thing happens
in a toy word-level language model, small enough to watch:

1. Train on generated sentences ("the sea horse swims in the sea .", "emoji-of fish
   FISH_EMOJI .", "emoji-of sea star STARFISH_EMOJI .") whose vocabulary has `sea`,
   `horse`, the marker `emoji-of` and emoji tokens, but no SEAHORSE_EMOJI. Then prompt
   "emoji-of sea horse": the logit lens shows what each layer holds, and
   `nearest_tokens` scores the final residual against every token: which emoji does it
   snap to?
2. Add SEAHORSE_EMOJI with different inits (small random, the global mean, sea + horse
   + the emoji direction, the two nearest emojis) and fine-tune only its rows: how many
   steps until it is the answer, and how much does adding the row alone change the old
   model's predictions on unrelated sentences (KL)?

    python experiments/seahorse.py            # about 2-3 minutes on 2 CPU cores
    python experiments/seahorse.py --quick    # under a minute, a rougher model

Writes figures/seahorse_lens.png and figures/seahorse_fix.png and prints the numbers.
Deterministic for a given --seed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

from minitf.lens import logit_lens
from minitf.model import Config, forward
from minitf.seahorse import (
    EMOJI,
    MARKER,
    MISSING,
    PROMPT,
    TRAIN,
    ToyLanguage,
    fix_inits,
    kl_after_adding,
    model_config,
    seahorse_contexts,
    unrelated_prompts,
    vocabulary,
)
from minitf.surgery import add_tokens, finetune
from minitf.train import train
from minitf.vectors import nearest_tokens
from minitf.words import WordTokenizer

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FIGURES = Path(__file__).resolve().parents[1] / "figures"
forward_jit = jax.jit(forward, static_argnums=2)  # (params, tokens, config) -> logits


def show_the_effect(params, config: Config, tok: WordTokenizer) -> dict:
    """Part 1: the lens table, the nearest tokens of the final residual, the lens figure."""
    tokens = np.array(tok.encode(PROMPT))  # (T,)
    lens = logit_lens(params, config, tokens, tokenizer=tok)
    print(lens.table(k=3))
    # where the words of the prompt, and the emojis nearest to it, rank at each layer
    watched = ["sea", "horse", MARKER, "HORSE_EMOJI", "FISH_EMOJI", "WAVE_EMOJI"]
    print("\nrank of each token in the lens at the last position (0 = top), per layer")
    print(f"{'layer':<8}" + "".join(f"{w:>13}" for w in watched))
    ranks = np.stack([lens.rank(tok.ids[w]) for w in watched], axis=1)  # (L+1, n_watched)
    for layer, row in enumerate(ranks):
        name = "embed" if layer == 0 else f"block {layer - 1}"
        print(f"{name:<8}" + "".join(f"{r:>13}" for r in row))
    tops = [tok.token_str(i) for i in lens.log_probs[:, -1].argmax(-1)]  # (L+1,)
    path = [t for i, t in enumerate(tops) if i == 0 or t != tops[i - 1]]
    lens.plot(
        FIGURES / "seahorse_lens.png",
        title="Logit lens on '... emoji-of sea horse' (no such emoji exists): the top guess at "
        f"the end goes {' -> '.join(path)}",
    )
    plt.close("all")
    _, acts = forward(params, tokens[None], config, cache=True)
    final = acts["ln_final.out"][0, -1]  # (D,): what the lm_head reads
    out = {}
    for metric in ("dot", "cosine"):
        ids, scores = nearest_tokens(params, config, final, k=5, metric=metric)
        row = ", ".join(f"{tok.token_str(i)} {s:.2f}" for i, s in zip(ids, scores, strict=True))
        print(f"nearest tokens to the final residual ({metric}): {row}")
        out[metric] = [(tok.token_str(i), float(s)) for i, s in zip(ids, scores, strict=True)]
    emoji_ids = [tok.ids[e] for e in sorted(set(EMOJI.values()))]
    probs = np.exp(lens.log_probs[-1, -1])  # (V,)
    best = max(emoji_ids, key=lambda i: probs[i])
    out["snap"] = (tok.token_str(best), float(probs[best]))
    out["emoji_mass"] = float(probs[emoji_ids].sum())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller, rougher run")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    args = parser.parse_args()
    base_steps, max_steps = (500, 200) if args.quick else (1200, 400)
    t_start = time.perf_counter()
    FIGURES.mkdir(exist_ok=True)

    tok = vocabulary()
    config = model_config(tok)
    base = train(config, ToyLanguage(tok), steps=base_steps, seed=args.seed, progress=False,
                 **TRAIN)  # fmt: skip
    params = base.params
    print(f"toy language model: {tok.vocab_size} words, final training loss "
          f"{np.mean(base.history['loss'][-50:]):.3f} nats ({base_steps} steps)\n")  # fmt: skip

    # --- 1. the effect ---
    effect = show_the_effect(params, config, tok)
    print(f"\nthe output snaps to {effect['snap'][0]} (p = {effect['snap'][1]:.2f}); all "
          f"emojis together get p = {effect['emoji_mass']:.2f}\n")  # fmt: skip

    # --- 2. the fix ---
    inits = fix_inits(tok)  # random, mean, sea + horse + emoji direction, two emojis
    unrelated = unrelated_prompts(tok)  # (n, SEQ)
    contexts = seahorse_contexts(tok)  # (m, 12)
    fix_task = ToyLanguage(tok.with_words([MISSING]), seahorse_share=0.1)
    new_id = tok.vocab_size
    results = {}
    for name, init in inits.items():
        new_params, new_config, _ = add_tokens(
            params, config, tok, [MISSING], init, key=jax.random.key(args.seed)
        )
        kl_mean, kl_max = kl_after_adding(params, config, new_params, new_config, unrelated)
        curve: tuple[list[int], list[float]] = ([], [])

        def learned(step, p, new_config=new_config, curve=curve) -> bool:
            logits = forward_jit(p, jnp.asarray(contexts), new_config)[:, -1]  # (m, V + 1)
            top1 = float((jnp.argmax(logits, -1) == new_id).mean())
            curve[0].append(step)
            curve[1].append(float(jax.nn.softmax(logits)[:, new_id].mean()))
            return top1 >= 0.9

        result = finetune(
            new_params, new_config, fix_task.batches(args.seed), steps=max_steps, lr=1e-2,
            only_rows=[new_id], callback=learned, check_every=5,
        )  # fmt: skip
        learned_at = result.steps if learned(result.steps, result.params) else None
        kl_after = kl_after_adding(params, config, result.params, new_config, unrelated)[0]
        results[name] = {"kl_mean": kl_mean, "kl_max": kl_max, "steps": learned_at,
                         "p0": curve[1][0], "curve": curve, "kl_after": kl_after}  # fmt: skip

    print(f"adding {MISSING}, then fine-tuning only its rows (lr 1e-2, at most {max_steps} steps)")
    print(f"{'init':<26} {'KL unrelated, mean':>18} {'max':>9} {'p(new) at 0':>12} "
          f"{'steps to top-1':>15} {'KL after':>9}")  # fmt: skip
    for name, r in results.items():
        steps = "never" if r["steps"] is None else str(r["steps"])
        print(f"{name:<26} {r['kl_mean']:>18.2e} {r['kl_max']:>9.2e} {r['p0']:>12.3f} "
              f"{steps:>15} {r['kl_after']:>9.2e}")  # fmt: skip
    plot_fix(results, max_steps)
    print(f"\nwrote {FIGURES / 'seahorse_lens.png'} and {FIGURES / 'seahorse_fix.png'}; "
          f"{time.perf_counter() - t_start:.0f} s")  # fmt: skip


def plot_fix(results: dict, max_steps: int) -> None:
    names = list(results)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), dpi=120)
    for i, name in enumerate(names):
        steps, probs = results[name]["curve"]
        axes[0].plot(steps, probs, marker=".", color=f"C{i}", label=name)
    axes[0].set_xlabel("fine-tuning step (only the new rows train)")
    axes[0].set_ylabel(f"p({MISSING}) after 'emoji-of sea horse'")
    axes[0].set_ylim(-0.02, 1.02)
    axes[0].legend(fontsize=8)
    axes[0].set_title("Learning the missing emoji", fontsize=9)
    steps = [max_steps if results[n]["steps"] is None else results[n]["steps"] for n in names]
    axes[1].bar(range(len(names)), steps, color=[f"C{i}" for i in range(len(names))])
    axes[1].set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    axes[1].set_ylabel(f"steps to top-1 in 90% of contexts ({max_steps}: never)", fontsize=8)
    axes[1].set_title("Steps to learn, per init", fontsize=9)
    kls = [max(results[n]["kl_mean"], 1e-12) for n in names]
    axes[2].bar(range(len(names)), kls, color=[f"C{i}" for i in range(len(names))])
    axes[2].set_yscale("log")
    axes[2].set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    axes[2].set_ylabel("KL(old || new) on unrelated sentences, nats")
    axes[2].set_title("How much adding the row alone changes other predictions", fontsize=9)
    fig.suptitle(
        f"Fixing the seahorse effect: adding {MISSING}. The init decides both how fast it is "
        "learned and how much the rest of the model's behaviour moves",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(FIGURES / "seahorse_fix.png")
    plt.close(fig)


if __name__ == "__main__":
    main()
