"""A Gradescope autograder for a lesson: the zip, and what runs inside it.

`minitf teacher export N --to DIR --gradescope` writes `DIR/gradescope/NN_name.zip`,
which is what Gradescope's "programming assignment" asks for:

    setup.sh          run once when Gradescope builds the image: Python 3.11+, a venv
                      in /autograder/venv, and minitf installed from the bundled source
    run_autograder    run for each submission: grades /autograder/submission and writes
                      /autograder/results/results.json
    hidden/NN_cases.npz   the lesson's hidden cases (never shown to students)
    minitf/           minitf's source (pyproject.toml, minitf/, lessons/)

`results.json` follows Gradescope's documented format: a top-level `score` and `output`,
and one entry per exercise in `tests` with `name`, `score`, `max_score` and `output`
(the same result and hint as the feedback file). Each submission runs in the sandbox
of `minitf.course.sandbox`, as with `minitf teacher grade`.

`run_autograder` reads `AUTOGRADER_ROOT` (default /autograder) and `MINITF_PYTHON`
(default the venv's python), so it can be tried in a temp folder before uploading.
"""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path

from minitf import course
from minitf.course import datafile, hidden
from minitf.course.files import write_atomic

SETUP = """\
#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image.
set -euo pipefail
cd "$(dirname "$0")"
PY=""
for candidate in python3.13 python3.12 python3.11 python3; do
  if command -v "$candidate" >/dev/null &&
     "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    PY="$(command -v "$candidate")"; break
  fi
done
if [ -z "$PY" ]; then  # Ubuntu 22.04 images ship Python 3.10
  apt-get update && apt-get install -y python3.11 python3.11-venv
  PY="$(command -v python3.11)"
fi
"$PY" -m venv /autograder/venv
/autograder/venv/bin/pip install --quiet ./minitf
"""

RUN = """\
#!/usr/bin/env bash
# Gradescope runs this for each submission (the student's files are in submission/).
set -uo pipefail
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
PY="${{MINITF_PYTHON:-$ROOT/venv/bin/python}}"
mkdir -p "$ROOT/results"
cd "$ROOT/source" && exec "$PY" -m minitf.course.gradescope "$ROOT" {lesson}
"""


def _source_files() -> list[tuple[Path, str]]:
    """(file, name in the zip) for minitf's source: what `pip install` needs."""
    root = course.REPO_ROOT
    if not (root / "pyproject.toml").is_file():
        raise ValueError("a Gradescope autograder bundles minitf's source: run the export from "
                         "a checkout of minitf (pip install -e .)")
    files = [(root / name, f"minitf/{name}") for name in ("pyproject.toml", "README.md")]
    for folder in ("minitf", "lessons"):
        for path in sorted((root / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.append((path, f"minitf/{path.relative_to(root)}"))
    return files


def write_autograder(zip_path: Path, lesson: int, cases: dict) -> Path:
    """Write the autograder zip of one lesson with its hidden `cases` (atomically)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in (("setup.sh", SETUP), ("run_autograder", RUN.format(lesson=lesson))):
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o755 << 16  # executable, as Gradescope runs them
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, text)
        z.writestr(f"hidden/{lesson:02d}_cases.npz", datafile.dumps(cases))
        for path, name in _source_files():
            z.write(path, name)
    return write_atomic(Path(zip_path), buffer.getvalue())


def find_submission(folder: Path, lesson: int) -> Path | None:
    """The submitted file of `lesson`: named like the lesson, else the only notebook/script."""
    stem = course.lesson_path(lesson).stem
    for suffix in (".ipynb", ".py"):
        named = sorted(folder.rglob(stem + suffix))
        if named:
            return named[0]
    for suffix in (".ipynb", ".py"):
        found = sorted(folder.rglob("*" + suffix))
        if len(found) == 1:
            return found[0]
    return None


def results(grades: list[hidden.ExerciseGrade], note: str = "") -> dict:
    """Gradescope's results.json for one submission's grades."""
    tests = []
    for g in grades:
        lines = [g.message or g.status]
        lines += [c.problem for c in g.cases if not c.passed][:5]
        if g.hint and g.status not in ("passing", "not started", "missing"):
            lines.append(f"Hint: {g.hint}")
        tests.append({"name": g.exercise, "score": g.score, "max_score": g.points,
                      "output": "\n".join(lines)})
    total = round(sum(g.score for g in grades), 2)
    return {"score": total, "output": note or f"{total:g} of {sum(g.points for g in grades):g} "
            "points on hidden test cases", "tests": tests}


def main(root: Path, lesson: int) -> int:
    """Grade `root`/submission; write `root`/results/results.json."""
    from minitf.course import sandbox, teacher

    root = Path(root)
    stored = datafile.load(root / "source" / "hidden" / f"{lesson:02d}_cases.npz", rebuild=True)
    path = find_submission(root / "submission", lesson)
    note = "" if path else (f"no {course.lesson_path(lesson).stem}.ipynb (or .py) in the "
                            "submission: upload your notebook")
    grades, _ = teacher.grade_file(path, lesson, stored, sandbox.Limits(), cpu=0)
    out = root / "results"
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "results.json", json.dumps(results(grades, note), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), int(sys.argv[2])))
