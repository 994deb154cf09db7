"""Checks for lesson 16's exercises: the weight norm, the Fourier spectrum of an
embedding, and the key frequencies.

Each takes the learner's definitions as `module`; AssertionError carries a hint, never
the expected answer. Compared with numpy at a 1e-5 relative tolerance, on inputs drawn
with explicit seeds, plus invariants of the discrete Fourier transform.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from minitf.course.hidden import close, graded

RTOL = 1e-5  # loose enough for a float32 computation


def _params(seed: int) -> dict:
    """A small parameter pytree shaped like minitf's: nested dicts, a list, vectors."""
    rng = np.random.default_rng(seed)
    normal = lambda *shape: jnp.asarray(rng.normal(size=shape), jnp.float32)  # noqa: E731
    return {
        "embed": normal(7, 4),
        "blocks": [{"ln1": {"scale": jnp.ones(4), "bias": jnp.zeros(4)},
                    "mlp": {"w_in": normal(4, 8), "b_in": normal(8)}}],
        "attn": {"w_qkv": normal(2, 4, 3)},
        "ln_final": {"scale": 5.0 * jnp.ones(4)},
        "unembed": rng.normal(size=(7, 4)),  # a numpy array works too
    }  # fmt: skip


def _norms_case(rng: np.random.Generator) -> tuple:
    norms = rng.exponential(size=int(rng.integers(3, 30))) * (rng.random() < 0.9)
    norms[1] = 1.0 + norms[1]  # at least one non-zero frequency
    return (norms, float(np.round(rng.uniform(0.3, 0.99), 3)))


@graded(points=1, cases=lambda rng: [(_params(int(s)),) for s in rng.integers(1 << 30, size=3)],
        compare=close(atol=1e-6, rtol=RTOL),
        hint="square every entry of every matrix (ndim >= 2, not the vectors), add them all "
        "up, then take one square root")
def check_weight_norm(module) -> None:
    for seed in (0, 1):
        params = _params(seed)
        got = module.weight_norm(params)
        assert np.ndim(got) == 0, "weight_norm should return one number"
        matrices = [np.asarray(x, np.float64) for x in jax.tree.leaves(params) if np.ndim(x) >= 2]
        everything = [np.asarray(x, np.float64) for x in jax.tree.leaves(params)]
        want = np.sqrt(sum(np.sum(m**2) for m in matrices))
        if np.isclose(float(got), np.sqrt(sum(np.sum(m**2) for m in everything)), rtol=RTOL):
            raise AssertionError("count only matrices (ndim >= 2): leave biases and "
                                 "layer-norm scales out, weight decay doesn't touch them")
        assert np.isclose(float(got), want, rtol=RTOL), (
            "not the norm of the matrices taken together: square every entry of every "
            "matrix, add them all up, then take one square root (also the 3-d arrays)")
    doubled = jax.tree.map(lambda x: 2 * np.asarray(x), _params(0))
    assert np.isclose(module.weight_norm(doubled), 2 * module.weight_norm(_params(0)),
                      rtol=RTOL), "doubling every weight should double the norm"  # fmt: skip
    assert module.weight_norm({"bias": jnp.ones(3)}) == 0, "a pytree of vectors has norm 0"


@graded(points=1, compare=close(atol=1e-5, rtol=RTOL),
        cases=lambda rng: [(rng.normal(size=(p + 2, int(rng.integers(1, 10)))), p)
                           for p in (int(n) for n in rng.integers(3, 40, size=4))],
        hint="np.fft.rfft of embed[:p] along axis 0, then the norm over the D columns (axis 1)")
def check_fourier_norms(module) -> None:
    for seed, (p, D) in enumerate([(11, 5), (12, 3), (59, 16)]):
        embed = np.random.default_rng(seed).normal(size=(p + 2, D))  # (V, D)
        got = np.asarray(module.fourier_norms(embed, p))
        assert got.shape == (p // 2 + 1,), (
            f"with p={p} there are p // 2 + 1 frequencies (0 .. p // 2): use np.fft.rfft "
            "over the residue axis (axis 0)")
        want = np.linalg.norm(np.fft.rfft(embed[:p], axis=0), axis=1)
        if np.allclose(got, np.linalg.norm(np.fft.rfft(embed, axis=0), axis=1)[: p // 2 + 1]):
            raise AssertionError("use only the residues' rows, embed[:p]: the last rows are "
                                 "the '+' and '=' tokens")
        assert np.allclose(got, want, rtol=RTOL, atol=1e-5), (
            "not the norm per frequency of the DFT over residues: transform along axis 0, "
            "then take the norm over the D columns (axis 1) of the complex result")
        # a cyclic shift of the residues changes phases, never the norms
        shifted = np.concatenate([np.roll(embed[:p], 3, axis=0), embed[p:]])
        assert np.allclose(module.fourier_norms(shifted, p), got, rtol=1e-5), (
            "shifting every residue by the same amount should not change the norms")
    # a pure wave: cos(2 pi k a / p) times a vector lives at frequency k only
    p, k = 59, 7
    vector = np.random.default_rng(10).normal(size=8)  # (D,)
    wave = np.cos(2 * np.pi * k * np.arange(p) / p)[:, None] * vector[None]  # (p, D)
    got = np.asarray(module.fourier_norms(np.concatenate([wave, np.ones((2, 8))]), p))
    assert int(np.argmax(got)) == k and got[k] > 1e3 * np.delete(got, k).max(), (
        "a pure cosine of frequency k over the residues should put all its weight at "
        "index k")
    constant = np.ones((p, 8))
    assert np.allclose(module.fourier_norms(constant, p)[1:], 0, atol=1e-4), (
        "an embedding that is the same for every residue has only frequency 0")


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
