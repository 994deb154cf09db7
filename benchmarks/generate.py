"""Generation speed: tokens/s for 256 new tokens, batch 1, with and without the KV cache.

Config B (n_layer 4, n_head 4, d_model 256, d_mlp 1024, vocab 512), random weights,
greedy decoding from a 16-token prompt. The tokens/s columns are warm (already compiled)
runs: the best of a few for the fast ones, so that other processes on a shared machine
disturb them less, and a single run without the cache; "first call s" is the first
`generate` call, compilation included. When `transformers` and `torch` are installed,
`GPT2LMHeadModel.generate` (with its cache, 2 torch threads) on a GPT-2 of the same size
is the reference, its runs alternating with minitf's so both meet the same machine load.
Left out: batches, sampling (greedy only) and GPUs.

    python benchmarks/generate.py [--new-tokens 256] [--repeats 5]

Prints a markdown table; this is a script, not a test.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax
import numpy as np

from minitf.model import Config, init_params
from minitf.sample import generate

PROMPT_LEN = 16


def timed(fn) -> float:
    """Wall-clock seconds of one call."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def minitf_runner(params, config: Config, prompt: list[int], new_tokens: int, use_cache: bool):
    """A no-argument function that generates greedily (returns numpy, so the work is done)."""
    return lambda: generate(params, config, prompt, new_tokens, temperature=0, use_cache=use_cache)


def transformers_runner(config: Config, prompt: list[int], new_tokens: int):
    """(a no-argument function running GPT2LMHeadModel.generate, a label), or None."""
    try:
        import torch
        import transformers
    except ImportError:
        return None
    torch.set_num_threads(2)
    gpt2_config = transformers.GPT2Config(
        vocab_size=config.vocab_size,
        n_positions=config.max_len,
        n_embd=config.d_model,
        n_layer=config.n_layer,
        n_head=config.n_head,
        n_inner=config.d_mlp,
        activation_function="gelu_new",  # the tanh GELU, as minitf
        bos_token_id=None,  # GPT-2's ids (50256) don't exist in a 512-token vocabulary;
        eos_token_id=None,  # without an end token it generates exactly new_tokens
    )
    model = transformers.GPT2LMHeadModel(gpt2_config).eval()
    ids = torch.tensor(prompt)[None]  # (1, T0)

    def run() -> None:
        with torch.no_grad():
            out = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=new_tokens,
                do_sample=False,
                use_cache=True,
                pad_token_id=0,
            )  # (1, T0 + N)
        assert out.shape[1] == len(prompt) + new_tokens

    return run, f"transformers {transformers.__version__} (torch {torch.__version__})"


def cpu_name() -> str:
    """The processor's model name (Linux), else whatever `platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, default=256, help="tokens to generate")
    parser.add_argument("--repeats", type=int, default=5, help="warm runs; the best is kept")
    args = parser.parse_args()
    n = args.new_tokens

    config = Config(
        vocab_size=512, n_layer=4, n_head=4, d_model=256, d_mlp=1024, max_len=PROMPT_LEN + n
    )
    params = init_params(config, jax.random.key(0))
    prompt = np.random.default_rng(0).integers(0, config.vocab_size, PROMPT_LEN).tolist()

    cached_run = minitf_runner(params, config, prompt, n, use_cache=True)
    uncached_run = minitf_runner(params, config, prompt, n, use_cache=False)
    reference_run = transformers_runner(config, prompt, n)
    cached_first, uncached_first = timed(cached_run), timed(uncached_run)  # compile + run
    uncached = timed(uncached_run)  # slow: one warm run is enough
    # alternate the two fast ones, so that both see the same quiet and busy moments
    cached_times, reference_times = [], []
    if reference_run is not None:
        reference_run[0]()  # warm up
    for _ in range(args.repeats):
        cached_times.append(timed(cached_run))
        if reference_run is not None:
            reference_times.append(timed(reference_run[0]))
    cached = min(cached_times)
    reference = min(reference_times) if reference_times else None

    rows = [
        ("minitf, KV cache", cached, cached_first),
        ("minitf, no cache", uncached, uncached_first),
    ]
    if reference is not None:
        rows.append((f"{reference_run[1]} GPT2LMHeadModel.generate, cache", reference, None))

    print(
        f"machine: {cpu_name()}, {os.cpu_count()} cores; jax {jax.__version__} on "
        f"{jax.devices()[0].platform}"
    )
    print(
        f"config B: n_layer 4, n_head 4, d_model 256, d_mlp 1024, vocab 512; batch 1, "
        f"prompt {PROMPT_LEN}, {n} new tokens, greedy; best of {args.repeats} warm runs\n"
    )
    print("| implementation | tokens/s | ms/token | first call s | vs no cache | vs transformers |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, seconds, first_s in rows:
        vs_uncached = f"{uncached / seconds:.1f}x"
        vs_reference = "n/a" if reference is None else f"{reference / seconds:.2f}x"
        first_text = "-" if first_s is None else f"{first_s:.1f}"
        print(
            f"| {name} | {n / seconds:.0f} | {1000 * seconds / n:.2f} | {first_text} | "
            f"{vs_uncached} | {vs_reference} |"
        )
    if reference is None:
        print("\n(transformers/torch not installed: no reference row)")


if __name__ == "__main__":
    main()
