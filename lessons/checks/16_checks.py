"""Checks for lesson 16's exercises: the real Fourier basis over residues, the key
frequencies of a spectrum, and the circle algorithm's logits.

Each takes the learner's definitions as `module`; AssertionError carries a hint, never
the expected answer. Compared with numpy formulas (and numpy's FFT) at a 1e-6 tolerance,
on inputs drawn with explicit seeds.
"""

from __future__ import annotations

import numpy as np

from minitf.course.hidden import close, graded

TOL = 1e-6


@graded(points=2, cases=lambda rng: [(int(2 * k + 1),) for k in rng.integers(1, 30, size=4)],
        compare=close(atol=1e-6, rtol=1e-6),
        hint="row 0 is 1/sqrt(p); then for k = 1 .. p//2 the rows sqrt(2/p) cos(2 pi k a / p) "
        "and sqrt(2/p) sin(2 pi k a / p) over the residues a = 0 .. p-1")
def check_fourier_basis(module) -> None:
    for p in (3, 7, 59):
        basis = np.asarray(module.fourier_basis(p), dtype=np.float64)
        assert basis.shape == (p, p), f"with p={p} the basis is a (p, p) matrix, one wave per row"
        assert np.allclose(basis @ basis.T, np.eye(p), atol=1e-6), (
            "the rows should be orthonormal (basis @ basis.T == identity): check the factors "
            "1/sqrt(p) for the constant row and sqrt(2/p) for the waves")
        a = np.arange(p)
        assert np.allclose(basis[0], 1 / np.sqrt(p), atol=TOL), "row 0 is the constant 1/sqrt(p)"
        for k in range(1, p // 2 + 1):
            angle = 2 * np.pi * k * a / p
            assert np.allclose(basis[2 * k - 1], np.sqrt(2 / p) * np.cos(angle), atol=TOL), (
                f"row {2 * k - 1} should be the cosine of frequency {k}: rows come as "
                "constant, cos 1, sin 1, cos 2, sin 2, ...")
            assert np.allclose(basis[2 * k], np.sqrt(2 / p) * np.sin(angle), atol=TOL), (
                f"row {2 * k} should be the sine of frequency {k}")
    # a cyclic shift of the residues changes the phases only: each frequency keeps its size
    p = 11
    signal = np.random.default_rng(0).normal(size=(p, 4))
    basis = np.asarray(module.fourier_basis(p))

    def sizes(x: np.ndarray) -> np.ndarray:
        """The size of each frequency 1..p//2 of the columns of x (p, D) in this basis."""
        rows = np.linalg.norm(basis @ x, axis=1)  # (p,): constant, cos 1, sin 1, ...
        return np.hypot(rows[1::2], rows[2::2])  # (p//2,)

    assert np.allclose(sizes(signal), sizes(np.roll(signal, 3, axis=0)), atol=1e-6), (
        "shifting every residue should not change the size of any frequency")
    fft = np.linalg.norm(np.fft.rfft(signal, axis=0), axis=1)[1:] * np.sqrt(2 / p)
    assert np.allclose(sizes(signal), fft, atol=1e-6), "the sizes should agree with numpy's FFT"


def _norms_case(rng: np.random.Generator) -> tuple:
    norms = rng.exponential(size=int(rng.integers(3, 30))) * (rng.random() < 0.9)
    norms[1] = 1.0 + norms[1]  # at least one non-zero frequency
    return (norms, float(np.round(rng.uniform(0.3, 0.99), 3)))


@graded(points=2, cases=lambda rng: [_norms_case(rng) for _ in range(6)],
        hint="leave out frequency 0, sort by energy (the squared norm) largest first (a "
        "stable sort), and return the fewest that reach the share")
def check_key_frequencies(module) -> None:
    #         k=0  1  2  3  4: energies (k >= 1) 9, 0, 16, 0; frequency 0 is ignored
    norms = np.array([50.0, 3.0, 0.0, 4.0, 0.0])
    got = module.key_frequencies(norms, 0.8)
    assert isinstance(got, list) and all(isinstance(k, int) for k in got), (
        "return a list of Python ints")
    assert 0 not in module.key_frequencies(norms, 0.99), "leave frequency 0 out"
    assert len(module.key_frequencies(np.array([0.0, 3.0, 4.0]), 0.6)) == 1, (
        "measure with the energy (the squared norm), not the norm: one frequency holds "
        "enough here")
    assert module.key_frequencies(norms, 0.5) == module.key_frequencies(norms, 0.64), (
        "a share reached exactly counts as reached (energy >= share)")
    rng = np.random.default_rng(0)
    for trial in range(5):
        norms = rng.exponential(size=30) * (rng.random(30) < 0.3 + 0.1 * trial)
        norms[1] = 1.0  # at least one non-zero frequency
        for share in (0.5, 0.8, 0.95):
            keys = module.key_frequencies(norms, share)
            energy = norms**2
            total = energy[1:].sum()
            assert keys and min(keys) >= 1 and max(keys) < len(norms), (
                "the frequencies are indices into norms, from 1 to len(norms) - 1")
            assert list(np.argsort(-energy[keys], kind="stable")) == list(range(len(keys))), (
                "list the frequencies largest energy first")
            assert energy[keys].sum() >= share * total * (1 - 1e-12), (
                "the frequencies you return should hold at least `share` of the energy")
            assert energy[keys[:-1]].sum() < share * total, (
                "return the fewest frequencies: without the last one the share is not "
                "reached yet")
            others = np.delete(energy[1:], [k - 1 for k in keys])
            assert others.size == 0 or others.max() <= energy[keys].min(), (
                "take the frequencies with the largest energy")


def _clock_case(rng: np.random.Generator) -> tuple:
    p, N = int(rng.integers(3, 60)), int(rng.integers(1, 30))
    frequencies = sorted(int(k) for k in rng.choice(np.arange(1, p // 2 + 1),
                                                     size=int(rng.integers(1, 4)) % (p // 2) + 1,
                                                     replace=False))
    return (rng.integers(0, p, N), rng.integers(0, p, N), p, frequencies)


@graded(points=2, cases=lambda rng: [_clock_case(rng) for _ in range(5)],
        compare=close(atol=1e-6, rtol=1e-6),
        hint="logits[n, c] is the sum over the frequencies k of cos(w_k (a_n + b_n - c)), "
        "with w_k = 2 pi k / p: one row per problem, one column per answer c")
def check_clock_logits(module) -> None:
    rng = np.random.default_rng(1)
    for p, frequencies in [(7, [1]), (13, [2, 5]), (59, [4, 11, 17, 22])]:
        a, b = rng.integers(0, p, 40), rng.integers(0, p, 40)
        got = np.asarray(module.clock_logits(a, b, p, list(frequencies)), dtype=np.float64)
        assert got.shape == (40, p), "return one score per problem and per answer: (N, p)"
        c = np.arange(p)[None]
        want = sum(np.cos(2 * np.pi * k / p * (a[:, None] + b[:, None] - c)) for k in frequencies)
        assert np.allclose(got, want, atol=1e-6), (
            "not the scores: logits[n, c] is the sum over the frequencies of "
            "cos(w_k (a_n + b_n - c)), with w_k = 2 pi k / p")
        assert np.array_equal(got.argmax(-1), (a + b) % p), (
            "the largest score should be at c = (a + b) mod p")
