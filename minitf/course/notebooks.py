"""Lesson files as the learner and the teacher get them: student, solution, notebook.

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
just drops the marker lines. A notebook is built from the cells by hand (plain nbformat 4
JSON), so nothing beyond the standard library is needed.

Left out: jupytext's YAML header and cell options.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from minitf.course import lesson_path

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"

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
