"""For teachers: export lessons as student notebooks plus hidden tests, and grade submissions.

The folder layout follows nbgrader's conventions, so it can be moved into an nbgrader
course if you already use one:

    DIR/source/NN_name/NN_name.ipynb     the full lesson (solution cells tagged for nbgrader)
    DIR/release/NN_name/NN_name.ipynb    what students get (solutions replaced by TODO stubs)
    DIR/hidden_tests/NN_checks.py        the checks, kept away from students
    DIR/submitted/STUDENT/.../NN_name.ipynb   where collected work goes (nbgrader's layout)

`grade` walks `SUBMISSIONS/STUDENT/**` for files named like a lesson (`.ipynb` or `.py`),
runs the checks on each and writes one CSV row per student x exercise, with 1 point per
passing exercise (otter-grader style: `score`, `max_score`).

Left out: nbgrader's gradebook database, partial credit, manual grading and feedback
files, and running each submission in a sandbox (submissions run in this process).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

from minitf import course
from minitf.course import check as course_check
from minitf.course.notebooks import to_notebook, to_solution, to_student

CSV_FIELDS = ["student", "lesson", "exercise", "status", "score", "max_score", "message"]
MISSING = "missing"


def export(numbers: list[int], to: Path) -> list[Path]:
    """Write source and release notebooks and hidden tests for the given lessons."""
    to = Path(to)
    written = []
    tests = to / "hidden_tests"
    tests.mkdir(parents=True, exist_ok=True)
    for number in numbers:
        path = course.lesson_path(number)
        source = path.read_text(encoding="utf-8")
        for kind, text in (("source", to_solution(source)),
                           ("release", to_student(source))):
            target = to / kind / path.stem / (path.stem + ".ipynb")
            target.parent.mkdir(parents=True, exist_ok=True)
            notebook = to_notebook(text)
            target.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n",
                              encoding="utf-8")
            written.append(target)
        checks = course.checks_dir() / f"{number:02d}_checks.py"
        if not checks.is_file():
            raise FileNotFoundError(f"lesson {number} has no checks file ({checks})")
        shutil.copy(checks, tests / checks.name)
        written.append(tests / checks.name)
    (to / "submitted").mkdir(exist_ok=True)
    readme = to / "README.md"
    readme.write_text(_README, encoding="utf-8")
    written.append(readme)
    return written


_README = """\
# minitf course export

- `release/`: give these notebooks to students.
- `source/`: the full lessons with solutions (nbgrader source notebooks).
- `hidden_tests/`: the exercise checks; keep them to yourself.
- `submitted/STUDENT/...`: put collected work here (one folder per student), then run
  `minitf teacher grade submitted --csv grades.csv`.
"""


def _lesson_stems(tests: Path) -> dict[int, str]:
    """{lesson number: file stem} for the lessons that have checks in `tests`."""
    stems = {}
    for number, path in course.list_lessons():
        if (tests / f"{number:02d}_checks.py").is_file():
            stems[number] = path.stem
    return stems


def default_tests_folder(submissions: Path) -> Path:
    """`hidden_tests/` beside the submissions folder (an export), else the lessons' checks."""
    beside = Path(submissions).resolve().parent / "hidden_tests"
    return beside if beside.is_dir() else course.checks_dir()


def grade(submissions: Path, csv_path: Path, tests: Path | None = None) -> list[dict]:
    """Grade every student folder in `submissions`; write and return the CSV rows."""
    submissions = Path(submissions)
    if not submissions.is_dir():
        raise FileNotFoundError(f"no submissions folder at {submissions}")
    tests = Path(tests) if tests is not None else default_tests_folder(submissions)
    stems = _lesson_stems(tests)
    students = sorted(p for p in submissions.iterdir() if p.is_dir())
    if not students:
        raise ValueError(f"{submissions} has no student folders (expected {submissions}/NAME/...)")
    # which lessons to grade: all of an export's hidden tests; with the lessons' own
    # checks, only the lessons somebody handed in
    found = {s.name: _find_submissions(s, stems) for s in students}
    if tests == course.checks_dir():
        handed_in = {n for files in found.values() for n in files}
        stems = {n: stem for n, stem in stems.items() if n in handed_in}
    rows = []
    for student in students:
        for number in sorted(stems):
            checks = course_check.load_checks(number, tests)
            path = found[student.name].get(number)
            if path is None:
                results = [course_check.Result(n, MISSING, "no file handed in") for n, _ in checks]
            else:
                results = course_check.check_file(number, path, tests)
            for r in results:
                rows.append({
                    "student": student.name,
                    "lesson": number,
                    "exercise": r.exercise,
                    "status": r.status,
                    "score": int(r.status == course_check.PASSING),
                    "max_score": 1,
                    "message": r.message.replace("\n", " "),
                })
    csv_path = Path(csv_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with csv_path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return rows


def _find_submissions(student: Path, stems: dict[int, str]) -> dict[int, Path]:
    """{lesson number: file} for a student's folder; a notebook wins over a script."""
    found: dict[int, Path] = {}
    for suffix in (".py", ".ipynb"):
        for number, stem in stems.items():
            matches = sorted(student.rglob(stem + suffix))
            if matches:
                found[number] = matches[0]
    return found
