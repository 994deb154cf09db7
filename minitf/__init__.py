"""minitf: a small, from-scratch transformer in JAX to learn from.

The library, read top-down: `tokens` (one tokenizer interface) with `bpe`, `chars` and
`words`; `model` (the transformer); `train` and `tasks` (learning); `sample`
(generation); `lens`, `tuned_lens`, `attribution` (seeing inside); `surgery` (new
tokens, wider models); `gpt2` (GPT-2 files); `cli` (the `minitf` command). The classroom
lives in `minitf.course`, which the library never imports.
"""

__version__ = "0.1.0"
