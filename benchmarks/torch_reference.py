"""A nanoGPT-style PyTorch model of minitf's architecture, for benchmarks/train.py and
benchmarks/text.py.

The same GPT-2 block as `minitf.model`: learned token and position embeddings, pre-LayerNorm
blocks of causal multi-head self-attention and a tanh-GELU MLP, a final LayerNorm and an
lm_head without bias (untied, or tied to the embedding as nanoGPT does). Written the way
nanoGPT writes it (eager PyTorch, float32, `scaled_dot_product_attention`), trained with
AdamW and gradient clipping, so the benchmarks compare minitf with what a PyTorch user
would write. `text_worker` trains nanoGPT's character-level recipe (warmup, cosine decay,
weight decay on matrices only) on batches it is handed. Left out: dropout,
`torch.compile`. PyTorch is never a dependency of minitf itself.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(d_model, 3 * d_model)  # queries, keys, values side by side
        self.c_proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.c_attn(x).split(D, dim=2)  # 3 x (B, T, D)
        q = q.view(B, T, self.n_head, D // self.n_head).transpose(1, 2)  # (B, H, T, K)
        k = k.view(B, T, self.n_head, D // self.n_head).transpose(1, 2)  # (B, H, T, K)
        v = v.view(B, T, self.n_head, D // self.n_head).transpose(1, 2)  # (B, H, T, K)
        z = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, K)
        z = z.transpose(1, 2).contiguous().view(B, T, D)  # (B, T, D)
        return self.c_proj(z)  # (B, T, D)


class Block(nn.Module):
    def __init__(self, d_model: int, n_head: int, d_mlp: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_head)
        self.ln_2 = nn.LayerNorm(d_model)
        self.c_fc = nn.Linear(d_model, d_mlp)
        self.c_proj = nn.Linear(d_mlp, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))  # (B, T, D)
        hidden = F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh")  # (B, T, M)
        return x + self.c_proj(hidden)  # (B, T, D)


class GPT(nn.Module):
    def __init__(
        self, vocab_size: int, max_len: int, n_layer: int, n_head: int, d_model: int, d_mlp: int,
        tie_embeddings: bool = False,
    ):  # fmt: skip
        super().__init__()
        self.wte = nn.Embedding(vocab_size, d_model)
        self.wpe = nn.Embedding(max_len, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_head, d_mlp) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d_model)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)
        for name, p in self.named_parameters():  # GPT-2 initialisation, as minitf's
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * n_layer) if name.endswith("c_proj.weight") else 0.02
                nn.init.normal_(p, std=std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)
        if tie_embeddings:  # nanoGPT: the lm_head reads with the embedding matrix itself
            self.lm_head.weight = self.wte.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        T = tokens.shape[1]
        x = self.wte(tokens) + self.wpe(torch.arange(T))  # (B, T, D)
        for block in self.blocks:
            x = block(x)  # (B, T, D)
        return self.lm_head(self.ln_f(x))  # (B, T, V)


def make_train_step(model: GPT, lr: float = 1e-3, weight_decay: float = 0.01, clip: float = 1.0):
    """A training step like nanoGPT's: masked cross-entropy, backward, clip, AdamW."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)

    def step(tokens: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> float:
        logits = model(tokens)  # (B, T, V)
        losses = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")
        loss = (losses * mask.flatten()).sum() / mask.sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        return loss.item()

    return step


def worker() -> None:
    """Run as a separate process by benchmarks/train.py, so that PyTorch's and XLA's
    thread pools never spin against each other: reads a JSON config on the first line
    of stdin, then for each line "n" runs n steps and prints their seconds."""
    import json
    import sys
    import time

    torch.set_num_threads(2)
    torch.manual_seed(0)
    c = json.loads(sys.stdin.readline())
    model = GPT(c["vocab"], c["seq"], c["n_layer"], c["n_head"], c["d_model"], c["d_mlp"])
    step = make_train_step(model, weight_decay=0.1)
    data = torch.randint(0, c["vocab"], (c["batch"], c["seq"] + 1))
    tokens, targets = data[:, :-1], data[:, 1:]  # (B, T): position t predicts t + 1
    mask = torch.ones(c["batch"], c["seq"])
    for line in sys.stdin:
        t0 = time.perf_counter()
        for _ in range(int(line)):
            step(tokens, targets, mask)
        print(time.perf_counter() - t0, flush=True)


def warmup_cosine(step: int, lr: float, warmup: int, steps: int, lr_end: float) -> float:
    """The learning rate at a step, as optax.warmup_cosine_decay_schedule (minitf) gives it:
    linear from 0 to lr over `warmup` steps, then a cosine down to lr_end at `steps`."""
    if step < warmup:
        return lr * step / warmup
    progress = min(1.0, (step - warmup) / max(1, steps - warmup))
    return lr_end + (lr - lr_end) * 0.5 * (1 + math.cos(math.pi * progress))


def text_worker(job_path: str) -> None:
    """Train on text as benchmarks/text.py asks: a JSON job file names an .npz with the
    training batches (steps, B, T+1) and the validation windows (n, T+1); prints one
    line of JSON with the seconds of training (model built to last step) and the
    validation loss on those windows."""
    import json
    import time

    import numpy as np

    torch.set_num_threads(2)
    with open(job_path, encoding="utf-8") as f:
        c = json.load(f)
    torch.manual_seed(c["seed"])
    data = np.load(c["data"])
    batches = torch.from_numpy(data["batches"].astype(np.int64))  # (steps, B, T+1)
    start = time.perf_counter()
    model = GPT(c["vocab"], c["seq"], c["n_layer"], c["n_head"], c["d_model"], c["d_mlp"],
                tie_embeddings=c["tie"])  # fmt: skip
    # weight decay on matrices only, as nanoGPT (and minitf) do
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": c["weight_decay"]},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]  # fmt: skip
    optimizer = torch.optim.AdamW(groups, lr=c["lr"], betas=(0.9, c["beta2"]))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine(
        step, 1.0, c["warmup"], c["steps"], c["lr_end"] / c["lr"]))  # fmt: skip
    losses = []
    for batch in batches:
        logits = model(batch[:, :-1])  # (B, T, V): position t predicts t + 1
        loss = F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), c["clip"])
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    seconds = time.perf_counter() - start
    windows = torch.from_numpy(data["val_windows"].astype(np.int64))  # (n, T+1)
    total, count = 0.0, 0
    with torch.no_grad():
        for chunk in windows.split(64):
            logits = model(chunk[:, :-1])  # (b, T, V)
            total += F.cross_entropy(logits.flatten(0, 1), chunk[:, 1:].flatten(),
                                     reduction="sum").item()  # fmt: skip
            count += chunk[:, 1:].numel()
    print(json.dumps({"seconds": seconds, "val_loss": total / count, "losses": losses[-20:]}))


if __name__ == "__main__":
    import sys

    if len(sys.argv) > 2 and sys.argv[1] == "text":
        text_worker(sys.argv[2])
    else:
        worker()
