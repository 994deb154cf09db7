"""minitf: a small, from-scratch transformer in JAX to learn from.

Modules, read top-down: `bpe` (tokens), `model` (the transformer), `tasks` and `train`
(learning), `sample` (generation), `lens` (seeing inside), `cli` (the `minitf` command).
"""

__version__ = "0.1.0"
