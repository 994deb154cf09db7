"""Lesson tooling: find lessons, make the student and solution versions, build notebooks.

A lesson is one percent-format Python file (`lessons/NN_name.py`): `# %%` starts a code
cell, `# %% [markdown]` a markdown cell whose lines are `# ` comments. It runs as a plain
script and opens as a notebook. Exercises are top-level functions whose reference
solution sits between nbgrader's markers, inside the function body:

    def utf8_encode(code_point: int) -> bytes:
        ### BEGIN SOLUTION
        ...
        ### END SOLUTION

The student version replaces each marked region with
`raise NotImplementedError("TODO: ...")` at the same indentation; the solution version
just drops the marker lines. Checking a learner's file lives in `minitf.course_check`, the
teacher's export and grading in `minitf.course_teacher`.

Left out: nbgrader's database, points per cell and manual grading, and jupytext's YAML
header and cell options; a notebook is built from the cells by hand (plain nbformat 4
JSON), so nothing beyond the standard library is needed.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
QUICK_ENV = "MINITF_QUICK"

# the checkout: minitf/ sits beside lessons/, figures/ and docs/ (editable install)
REPO_ROOT = Path(__file__).resolve().parents[1]


# --- where things are ----------------------------------------------------------------


def quick_mode() -> bool:
    """True when a lesson should run its short version: `MINITF_QUICK=1` or `--quick`."""
    flag = os.environ.get(QUICK_ENV, "").strip().lower()
    return flag in {"1", "true", "yes", "on"} or "--quick" in sys.argv[1:]


def lessons_dir() -> Path:
    """The folder of lesson sources: `$MINITF_LESSONS_DIR`, else `lessons/` in the checkout."""
    # a checkout (editable install) has lessons/ beside minitf/; a wheel has minitf/lessons/
    default = REPO_ROOT / "lessons"
    if not default.is_dir():
        default = Path(__file__).resolve().parent / "lessons"
    folder = Path(os.environ.get("MINITF_LESSONS_DIR", default))
    if not folder.is_dir():
        raise FileNotFoundError(
            f"no lessons folder at {folder}; install minitf from a checkout "
            "(pip install -e .) or set MINITF_LESSONS_DIR"
        )
    return folder


def checks_dir() -> Path:
    """The folder of exercise checks, `lessons/checks/` (one `NN_checks.py` per lesson)."""
    return lessons_dir() / "checks"


def lesson_path(number: int) -> Path:
    """The source file of lesson `number`, e.g. 1 -> lessons/01_text_is_bytes.py."""
    found = sorted(lessons_dir().glob(f"{number:02d}_*.py"))
    if not found:
        available = ", ".join(str(n) for n, _ in list_lessons()) or "none"
        raise ValueError(f"there is no lesson {number}; available lessons: {available}")
    return found[0]


def list_lessons() -> list[tuple[int, Path]]:
    """Every lesson as (number, path), in order."""
    out = []
    for path in sorted(lessons_dir().glob("[0-9][0-9]_*.py")):
        out.append((int(path.name[:2]), path))
    return out


def figures_dir() -> Path:
    """Where lessons write figures: `$MINITF_FIGURES_DIR`, else `figures/` under the cwd."""
    folder = Path(os.environ.get("MINITF_FIGURES_DIR", Path.cwd() / "figures"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def gpt2_dir() -> Path | None:
    """A folder with GPT-2's `vocab.json` + `merges.txt`, or None when there is none.

    Looks at `$MINITF_GPT2_DIR`, then `shared/data/gpt2` beside the checkout (where CI
    keeps a copy).
    """
    candidates = [os.environ.get("MINITF_GPT2_DIR"), REPO_ROOT.parent / "shared/data/gpt2"]
    for folder in candidates:
        if folder and (Path(folder) / "vocab.json").is_file():
            return Path(folder)
    return None


def cache_dir() -> Path:
    """Where lessons keep the models they train: `$MINITF_CACHE`, else ~/.cache/minitf."""
    folder = Path(os.environ.get("MINITF_CACHE", Path.home() / ".cache" / "minitf"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def trained_model(task_name: str = "addition", *, steps: int | None = None, seed: int = 0,
                  **task_options) -> tuple[dict, object, object]:
    """A model trained on a toy task with `minitf train`'s defaults -> (params, config, task).

    Trained once, then loaded from `cache_dir()`, so lessons that study the same model
    (3, 8, 9) don't each train it. Quick mode trains for half the default steps unless
    `steps` is given. Delete the cache folder to retrain.
    """
    from minitf.tasks import config_for, make_task, train_defaults
    from minitf.train import train

    task = make_task(task_name, **task_options)
    defaults = train_defaults(task)
    if steps is None:
        steps = defaults["steps"] // 2 if quick_mode() else defaults["steps"]
    config = config_for(task, **defaults["model"])
    spec = "-".join(f"{k}{v}" for k, v in sorted(task.spec.items()))

    def fit() -> dict:
        return train(config, task, steps=steps, batch_size=defaults["batch_size"],
                     lr=defaults["lr"], weight_decay=defaults.get("weight_decay", 0.1),
                     seed=seed, progress=False).params  # fmt: skip

    name = f"{task.name}-{spec}-steps{steps}-seed{seed}"
    return cached_params(name, config, steps, fit), config, task


def cached_params(name: str, config, steps: int, fit) -> dict:
    """Parameters that `fit()` trains for `steps` steps, trained once and then loaded from
    `cache_dir()/name/checkpoint` (while its config and step count still match)."""
    import jax

    from minitf.checkpoint import load_checkpoint, save_checkpoint

    checkpoint = cache_dir() / name / "checkpoint"
    if (checkpoint / "config.json").is_file():
        saved = load_checkpoint(checkpoint)
        if saved.config == config and saved.step == steps:
            return saved.params
    print(f"training {name} for {steps} steps (once; cached in {checkpoint.parent})")
    params = jax.device_get(fit())  # host arrays, like a loaded checkpoint
    save_checkpoint(checkpoint, params, config, None, steps)
    return params


# --- student and solution versions -----------------------------------------------------

_DEF = re.compile(r"^\s*(?:async\s+)?def\s+(\w+)")


def _regions(lines: list[str]) -> list[tuple[int, int]]:
    """(begin, end) line indices of every solution region; ValueError if unbalanced."""
    regions, begin = [], None
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped == BEGIN_SOLUTION:
            if begin is not None:
                raise ValueError(f"line {i + 1}: {BEGIN_SOLUTION} inside another solution")
            begin = i
        elif stripped == END_SOLUTION:
            if begin is None:
                raise ValueError(f"line {i + 1}: {END_SOLUTION} without a {BEGIN_SOLUTION}")
            regions.append((begin, i))
            begin = None
    if begin is not None:
        raise ValueError(f"line {begin + 1}: {BEGIN_SOLUTION} is never closed")
    return regions


def to_student(source: str) -> str:
    """The learner's version: each solution region becomes a NotImplementedError stub."""
    lines = source.splitlines(keepends=True)
    out: list[str] = []
    start = 0
    for begin, end in _regions(lines):
        out.extend(lines[start:begin])
        indent = lines[begin][: len(lines[begin]) - len(lines[begin].lstrip())]
        # name the function the stub belongs to: the nearest `def` above the marker
        name = next((m.group(1) for ln in reversed(lines[:begin]) if (m := _DEF.match(ln))), "")
        todo = f"TODO: write {name}" if name else "TODO: write this part"
        out.append(f'{indent}raise NotImplementedError("{todo}")\n')
        start = end + 1
    out.extend(lines[start:])
    return "".join(out)


def to_solution(source: str) -> str:
    """The full version: the solution stays, the marker lines go."""
    lines = source.splitlines(keepends=True)
    _regions(lines)  # validate
    keep = [ln for ln in lines if ln.strip() not in {BEGIN_SOLUTION, END_SOLUTION}]
    return "".join(keep)


# --- percent cells and notebooks -------------------------------------------------------


@dataclass
class Cell:
    kind: str  # "code" or "markdown"
    source: str  # the cell's text; for markdown, without the leading "# "


_CELL = re.compile(r"^# %%(?P<rest>.*)$")


def parse_cells(source: str) -> list[Cell]:
    """Split a percent-format file into cells. Text before the first `# %%` is a code cell."""
    cells: list[Cell] = []
    kind, body = "code", []

    def flush() -> None:
        text = "\n".join(body).strip("\n")
        if kind == "markdown":
            text = "\n".join(_uncomment(ln) for ln in text.splitlines())
        if text.strip():
            cells.append(Cell(kind, text))

    for line in source.splitlines():
        match = _CELL.match(line)
        if match:
            flush()
            kind = "markdown" if "[markdown]" in match.group("rest") else "code"
            body = []
        else:
            body.append(line)
    flush()
    return cells


def _uncomment(line: str) -> str:
    if line.startswith("# "):
        return line[2:]
    return line[1:] if line.startswith("#") else line


def to_notebook(source: str) -> dict:
    """An nbformat-4 notebook (as a dict, ready for json.dump) from a percent-format file.

    Cells holding a solution region get nbgrader's metadata (`solution: true`), so the
    notebook also works as an nbgrader source notebook.
    """
    cells = []
    for i, cell in enumerate(parse_cells(source)):
        lines = cell.source.splitlines(keepends=True)
        entry: dict = {"cell_type": cell.kind, "id": f"cell-{i}", "metadata": {}, "source": lines}
        if cell.kind == "code":
            entry.update(execution_count=None, outputs=[])
            if BEGIN_SOLUTION in cell.source or "NotImplementedError(\"TODO" in cell.source:
                entry["metadata"]["nbgrader"] = {
                    "grade": False,
                    "grade_id": f"solution-{i}",
                    "locked": False,
                    "schema_version": 3,
                    "solution": True,
                    "task": False,
                }
        cells.append(entry)
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def notebook_code(notebook: dict) -> str:
    """The code cells of a notebook joined into one script; IPython `%`/`!` lines dropped."""
    if not isinstance(notebook, dict) or "cells" not in notebook:
        raise ValueError("not a Jupyter notebook: the JSON has no 'cells' list")
    parts = []
    for cell in notebook["cells"]:
        if cell.get("cell_type") != "code":
            continue
        src = cell.get("source", "")
        src = "".join(src) if isinstance(src, list) else src
        kept = [ln for ln in src.splitlines() if not ln.lstrip().startswith(("%", "!"))]
        parts.append("\n".join(kept))
    return "\n\n".join(parts) + "\n"


def read_source(path: Path) -> str:
    """Python source of a lesson file, `.py` or `.ipynb`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".ipynb":
        try:
            return notebook_code(json.loads(text))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid notebook JSON ({err})") from err
    return text


def write_lesson(
    number: int, out_dir: Path, *, student: bool = True, notebook: bool = False
) -> Path:
    """Write the student (default) or solution version of a lesson into `out_dir`."""
    path = lesson_path(number)
    source = path.read_text(encoding="utf-8")
    text = to_student(source) if student else to_solution(source)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if notebook:
        target = out_dir / (path.stem + ".ipynb")
        target.write_text(json.dumps(to_notebook(text), indent=1, ensure_ascii=False) + "\n",
                          encoding="utf-8")
    else:
        target = out_dir / path.name
        target.write_text(text, encoding="utf-8")
    return target


# --- helpers the lessons share ---------------------------------------------------------

FIGSIZE = (7.0, 4.0)  # inches: every lesson figure has the same size...
DPI = 100  # ...and resolution, so regenerated figures diff cleanly


def setup_matplotlib() -> None:
    """Draw off-screen (Agg) when run as a script; leave a notebook's inline backend alone.
    Also keeps JAX's compiled code on disk, so a lesson's second run starts faster."""
    import matplotlib

    from minitf.devices import setup_compilation

    setup_compilation()

    if "ipykernel" not in sys.modules:
        matplotlib.use("Agg")


def save_figure(fig: object, name: str) -> Path:
    """Save a matplotlib figure under `figures_dir()` at the course's dpi; return the path."""
    path = figures_dir() / name
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    print(f"figure written: {path}")
    return path
