"""Benchmark minitf's BPE against Hugging Face `tokenizers` (and `tiktoken` for encoding).

Prints a markdown table: training time to vocab 4096, encoding speed on the whole text,
and bytes per token at several vocabulary sizes, all measured in this one run on the
same text. Both trainers use GPT-2's split pattern and count the 256 bytes in the
vocabulary, so they learn the same number of merges. Then a second table: `minitf bpe
train` on 10 MB and 50 MB files (benchmarks/big_text.py: the standard library's sources
and tinyshakespeare), its time and peak memory (RSS of the whole process, and its
growth over the same command on a 1 KB file, which is the interpreter, numpy and JAX).
Run: `python benchmarks/bpe.py [--memory-mb 10 50] [--no-memory]`.
"""

from __future__ import annotations

import os
import platform
import sysconfig
import time
from importlib.metadata import version
from pathlib import Path
from tempfile import TemporaryDirectory

import tiktoken
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import models, pre_tokenizers, trainers

from minitf.bpe import GPT2_PATTERN, Tokenizer

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"
REPEATS = 3  # every time is the best of this many runs (the machine may be shared)


def load_text() -> tuple[str, str]:
    """tinyshakespeare where ../shared has it; otherwise about 1.1 MB of stdlib sources."""
    if SHAKESPEARE.is_file():
        return SHAKESPEARE.read_text(encoding="utf-8"), "tinyshakespeare.txt"
    text = ""
    for f in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        text += f.read_text(encoding="utf-8", errors="replace")
        if len(text) > 1_100_000:
            break
    return text, "Python stdlib *.py sources"


def best_times(**fns) -> tuple[dict[str, float], dict[str, object]]:
    """Fastest wall time of each function over REPEATS rounds, and its last result.

    The functions take turns within each round, so a busy moment on a shared machine
    slows all of them rather than one.
    """
    times: dict[str, list[float]] = {name: [] for name in fns}
    results: dict[str, object] = {}
    for _ in range(REPEATS):
        for name, fn in fns.items():
            start = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - start)
    return {name: min(t) for name, t in times.items()}, results


def hf_train(text: str, vocab_size: int) -> HFTokenizer:
    """`tokenizers`' own byte-level BPE trainer; vocab_size includes its 256-byte alphabet."""
    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    # lines rather than one 1 MB string: the faster of the two for `tokenizers`
    tok.train_from_iterator(text.splitlines(keepends=True), trainer)
    return tok


def memory_table(sizes_mb: list[int]) -> None:
    """Time and peak RSS of `minitf bpe train` (vocab 1024) on files of the given sizes."""
    import sys

    from big_text import make_big_text, peak_rss  # beside this script

    print("\n| file | time (s) | peak RSS (MB) | growth over 1 KB file (MB) | growth / size |")
    print("|---|---:|---:|---:|---:|")
    with TemporaryDirectory() as folder:
        folder = Path(folder)
        tiny = folder / "tiny.txt"
        tiny.write_text("a small text to train on, " * 40, encoding="utf-8")

        def run(path: Path) -> tuple[float, float]:
            argv = [sys.executable, "-m", "minitf.cli", "bpe", "train", str(path), "--vocab-size",
                    "1024", "--out", str(folder / "tok")]  # fmt: skip
            seconds, peak, code = peak_rss(argv)
            if code:
                raise SystemExit(f"minitf bpe train failed on {path}")
            return seconds, peak

        _, base = run(tiny)
        for mb in sizes_mb:
            path = make_big_text(folder / f"big-{mb}.txt", mb * 10**6)
            size = path.stat().st_size / 1e6
            seconds, peak = run(path)
            print(f"| {size:.0f} MB | {seconds:.0f} | {peak:,.0f} | {peak - base:,.0f} | "
                  f"{(peak - base) / size:.1f}x |", flush=True)
    print(f"(the 1 KB file: peak RSS {base:.0f} MB; load average {os.getloadavg()[0]:.1f})")


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory-mb", type=int, nargs="+", default=[10, 50],
                        help="file sizes for the memory table, in MB (10 50)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory table")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]  # other work on the machine slows every column
    text, source = load_text()
    n_bytes = len(text.encode("utf-8"))
    rows = []

    # training to 4096: time and compression
    t, trained = best_times(
        minitf=lambda: Tokenizer.train(text, 4096, pattern="gpt2"),
        tokenizers=lambda: hf_train(text, 4096),
    )
    ours, hf = trained["minitf"], trained["tokenizers"]
    assert ours.vocab_size == hf.get_vocab_size() == 4096
    ratio = t["minitf"] / t["tokenizers"]
    rows.append(("train to vocab 4096 (s)", t["minitf"], t["tokenizers"], None, ratio))

    # encoding the whole text with minitf's merges in all three libraries
    with TemporaryDirectory() as folder:
        ours.save_gpt2(folder)
        hf_ours = HFTokenizer(models.BPE.from_file(f"{folder}/vocab.json", f"{folder}/merges.txt"))
    hf_ours.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    ranks = {ours.token_bytes(i): i for i in range(ours.vocab_size)}
    tt = tiktoken.Encoding("minitf", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens={})
    # a fresh Tokenizer each time, so minitf's chunk cache starts empty
    t, ids = best_times(
        minitf=lambda: Tokenizer(ours.merges, pattern="gpt2").encode(text),
        tokenizers=lambda: hf_ours.encode(text).ids,
        tiktoken=lambda: tt.encode_ordinary(text),
    )
    assert ids["minitf"] == ids["tokenizers"] == ids["tiktoken"], "the encoders disagree"
    mbs = [n_bytes / t[name] / 1e6 for name in ("minitf", "tokenizers", "tiktoken")]
    rows.append(("encode the whole text (MB/s)", *mbs, mbs[0] / mbs[1]))

    # compression: each library's own trainer, encoded by its own encoder
    for vocab_size in (512, 1024, 4096):
        tok = ours if vocab_size == 4096 else Tokenizer.train(text, vocab_size, pattern="gpt2")
        other = hf if vocab_size == 4096 else hf_train(text, vocab_size)
        ratio_ours = n_bytes / len(tok.encode(text))
        ratio_hf = n_bytes / len(other.encode(text).ids)
        rows.append(
            (f"bytes/token, vocab {vocab_size}", ratio_ours, ratio_hf, None, ratio_ours / ratio_hf)
        )

    print(f"Text: {source}, {n_bytes / 1e6:.2f} MB. Split pattern: GPT-2's. Best of {REPEATS}.")
    print(
        f"Machine: {platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; tokenizers {version('tokenizers')}, "
        f"tiktoken {version('tiktoken')}. Load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after.\n"
    )
    print("| measure | minitf | tokenizers | tiktoken | minitf / tokenizers |")
    print("|---|---:|---:|---:|---:|")
    for name, a, b, c, ratio in rows:
        third = "" if c is None else f"{c:.2f}"
        print(f"| {name} | {a:.2f} | {b:.2f} | {third} | {ratio:.2f}x |")
    if not args.no_memory:
        memory_table(args.memory_mb)


if __name__ == "__main__":
    main()
