"""The explore page: one self-contained HTML file (its script, styles and data inline).

The page is a template (`static/page.html`) with the stylesheet (`static/explore.css`),
the script (`static/explore.js`) and the JSON from `minitf.explore.data` written into
it. Nothing is loaded from anywhere else, so the file works from `file://`, offline, on
a projector in a classroom without a network. Left out: any build step or framework.
"""

from __future__ import annotations

import html
import json
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

from minitf.checkpoint import write_atomic
from minitf.explore.data import page_data
from minitf.model import Config, Params
from minitf.tasks import Task
from minitf.tuned_lens import TunedLens

GENERATOR = '<meta name="generator" content="minitf explore">'  # how a page is recognised


def _static(name: str) -> str:
    return (resources.files("minitf.explore") / "static" / name).read_text(encoding="utf-8")


def _json_in_script(data: dict) -> str:
    """JSON that can sit inside <script>: '<' escaped, so no '</script>' can end it early."""
    try:
        text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError:
        raise ValueError(
            "the model's numbers include NaN or infinity, which the page can't show; "
            "check the checkpoint (did training diverge?)"
        ) from None
    return text.replace("<", "\\u003c")


def render(data: dict) -> str:
    """The page's HTML for the data of `minitf.explore.data.page_data`."""
    parts = {
        "TITLE": html.escape(data["title"]),
        "CSS": _static("explore.css"),
        "JS": _static("explore.js"),
        "DATA": _json_in_script(data),
    }
    # one pass over the template, so nothing inserted is itself searched for placeholders
    return re.sub(r"\{\{(\w+)\}\}", lambda m: parts[m.group(1)], _static("page.html"))


def check_writable(path: Path) -> None:
    """Refuse to replace a file that is not a page minitf explore wrote (never lose work)."""
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give --out a file name such as explore.html")
    if path.exists():
        with open(path, encoding="utf-8", errors="replace") as f:
            head = f.read(2000)
        if GENERATOR not in head:
            raise ValueError(
                f"{path} exists and is not a page minitf explore wrote; choose another "
                "--out, or move that file away"
            )


def write_html(path: str | os.PathLike, text: str) -> Path:
    """Write the page atomically (`write_atomic`: a temporary file beside it, then a rename)."""
    path = Path(path)
    check_writable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, text)


def write_page(
    path: str | os.PathLike,
    params: Params,
    config: Config,
    tokenizer: Any,
    inputs: list[str] | None = None,
    *,
    task: Task | dict | None = None,
    tuned: TunedLens | None = None,
    title: str | None = None,
    hint: str | None = None,
) -> Path:
    """Compute the page's data for `inputs` (see `page_data`: a toy task's prompts get
    the model's answers) and write the page to `path`. `tuned` adds the tuned-lens switch.
    """
    path = Path(path)
    check_writable(path)  # before the work, so a bad --out fails at once
    data = page_data(params, config, tokenizer, inputs, task=task, tuned=tuned, title=title,
                     hint=hint)  # fmt: skip
    return write_html(path, render(data))


def write_demo_page(out: str | os.PathLike, params: Params, config: Config, task: Task) -> Path:
    """`minitf demo`'s explore.html in `out`, with a tuned lens fitted for its switch and
    kept in out/checkpoint/ (where `minitf explore` finds it again)."""
    from minitf.explore.data import fit_tuned_lens
    from minitf.train import CHECKPOINT_DIR
    from minitf.tuned_lens import TUNED_LENS_FILE, save_tuned_lens

    out = Path(out)
    tuned = fit_tuned_lens(params, config, task)
    if (out / CHECKPOINT_DIR).is_dir():
        save_tuned_lens(tuned, out / CHECKPOINT_DIR / TUNED_LENS_FILE)
    hint = f"Type your own inputs: minitf explore {out} --serve"
    return write_page(out / "explore.html", params, config, task.tokenizer, task=task,
                      tuned=tuned, hint=hint)  # fmt: skip
