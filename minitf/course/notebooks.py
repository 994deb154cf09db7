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
from minitf.course.files import output_folder, write_atomic

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"

# --- student and solution versions -----------------------------------------------------

_DEF = re.compile(r"^\s*(?:async\s+)?def\s+(\w+)", re.M)


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


BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"
END_HIDDEN = "### END HIDDEN TESTS"


def _nbgrader(grade_id: str, *, solution: bool = False, points: float | None = None) -> dict:
    """nbgrader's cell metadata (schema version 3): a solution cell or a graded test cell."""
    meta = {"grade": points is not None, "grade_id": grade_id, "locked": points is not None,
            "schema_version": 3, "solution": solution, "task": False}
    if points is not None:
        meta["points"] = points
    return meta


def graded_cell(exercise: str, points: float, hidden: str | None) -> str:
    """The autograded test cell of an exercise; `hidden` is the code of its hidden tests
    (None in the students' version, where nbgrader has removed it)."""
    unit = "point" if points == 1 else "points"
    lines = [f"# Graded: {exercise}, {points:g} {unit}. Your teacher's hidden test cases run "
             "here when grading."]
    if hidden is not None:
        lines += [BEGIN_HIDDEN, hidden.rstrip("\n"), END_HIDDEN]
    return "\n".join(lines)


def to_notebook(source: str, graded: dict[str, tuple[float, str | None]] | None = None,
                functions: dict[str, tuple[str, ...]] | None = None) -> dict:
    """An nbformat-4 notebook (as a dict, ready for json.dump) from a percent-format file.

    Cells holding a solution region get nbgrader's metadata (`solution: true`). With
    `graded` ({exercise: (points, hidden test code or None)}), each exercise also gets an
    autograded test cell (nbgrader's `grade: true` with its points) right after the cell
    that defines it (for an exercise of several `functions`, {exercise: names}: its last
    one), so the notebook is an nbgrader source notebook (with the hidden code) or what
    nbgrader releases from one (None).
    """
    after = {(functions or {}).get(name, (name,))[-1]: name for name in graded or {}}
    cells = []
    for i, cell in enumerate(parse_cells(source)):
        lines = cell.source.splitlines(keepends=True)
        entry: dict = {"cell_type": cell.kind, "id": f"cell-{i}", "metadata": {}, "source": lines}
        cells.append(entry)
        if cell.kind != "code":
            continue
        entry.update(execution_count=None, outputs=[])
        if BEGIN_SOLUTION in cell.source or "NotImplementedError(\"TODO" in cell.source:
            entry["metadata"]["nbgrader"] = _nbgrader(f"solution-{i}", solution=True)
        for name in (after[f] for f in _DEF.findall(cell.source) if f in after):
            points, hidden = graded[name]
            cells.append({"cell_type": "code", "id": f"graded-{name}", "execution_count": None,
                          "metadata": {"nbgrader": _nbgrader(f"graded-{name}", points=points)},
                          "outputs": [], "source": graded_cell(name, points, hidden)
                          .splitlines(keepends=True)})
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def code_cells(notebook: dict) -> list[tuple[int, str]]:
    """(cell number counting every cell from 1, code) for each code cell of a notebook.

    IPython's `%magic` and `!shell` lines become blank lines, so line numbers still match
    what the learner sees in the cell.
    """
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise ValueError("not a Jupyter notebook: the JSON has no 'cells' list")
    out = []
    for number, cell in enumerate(notebook["cells"], start=1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        src = cell.get("source", "")
        src = "".join(src) if isinstance(src, list) else str(src)
        kept = ["" if ln.lstrip().startswith(("%", "!")) else ln for ln in src.splitlines()]
        out.append((number, "\n".join(kept) + "\n"))
    return out


def notebook_code(notebook: dict) -> str:
    """The code cells of a notebook joined into one script; IPython `%`/`!` lines blanked."""
    return "\n".join(code for _, code in code_cells(notebook))


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


@dataclass
class Written:
    path: Path  # where the lesson is now
    note: str  # what happened, for the learner: "wrote ...", "... is unchanged", ...


def write_lesson(
    number: int, out_dir: Path, *, student: bool = True, notebook: bool = False
) -> Written:
    """Write the student (default) or solution version of a lesson into `out_dir`.

    Never replaces a file that is already there: when `out_dir` holds the lesson's file
    with other content (the learner's work, or the other version), the new one is
    written beside it as NAME.solution.py / NAME.student.py (then -2, -3, ...), and the
    note says so. Writes through a temp file + rename, so a kill can't leave half a file.
    """
    path = lesson_path(number)
    source = path.read_text(encoding="utf-8")
    text = to_student(source) if student else to_solution(source)
    if notebook:
        text = json.dumps(to_notebook(text), indent=1, ensure_ascii=False) + "\n"
    out_dir = output_folder(Path(out_dir), "--out")
    suffix = ".ipynb" if notebook else ".py"
    target = out_dir / (path.stem + suffix)
    kind = "student" if student else "solution"
    if not target.exists():
        return Written(write_atomic(target, text), f"wrote {target}")
    if _same(target, text):
        return Written(target, f"{target} is already there, unchanged")
    beside = out_dir / f"{path.stem}.{kind}{suffix}"
    n = 2
    while beside.exists() and not _same(beside, text):
        beside = out_dir / f"{path.stem}.{kind}-{n}{suffix}"
        n += 1
    if not beside.exists():
        write_atomic(beside, text)
    return Written(beside, f"{target.name} is already there with other content (your work?), "
                   f"so it was left as it is; the {kind} version is in {beside}")


def _same(path: Path, text: str) -> bool:
    try:
        return path.read_text(encoding="utf-8") == text
    except (OSError, UnicodeDecodeError):
        return False
