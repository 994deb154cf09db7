"""For teachers: export lessons for a graded class, and grade what the students hand in.

`export` writes a folder in nbgrader's course layout:

    DIR/source/NN_name/NN_name.ipynb     nbgrader source notebooks: solutions between
                                         ### BEGIN/END SOLUTION, one autograded test cell per
                                         exercise with its points and ### BEGIN HIDDEN TESTS
    DIR/release/NN_name/NN_name.ipynb    what students get (what nbgrader would release)
    DIR/hidden_tests/NN_cases.npz        the hidden cases: inputs and expected outputs
    DIR/hidden_tests/secret.key          the secret they were drawn with (unless --secret)
    DIR/submitted/STUDENT/.../NN_name.ipynb   where collected work goes
    DIR/gradescope/NN_name.zip           with --gradescope: Gradescope autograders

`grade` finds each student's file of each exercised lesson (`.ipynb` or `.py`), runs it
in its own sandboxed process (`minitf.course.sandbox`) on the hidden inputs, compares
with the expected outputs (`minitf.course.hidden`) and writes, into a new folder:

    gradebook.csv       one row per student, one column per exercise, a total; the first
                        row holds the points possible (as Canvas's import expects)
    results.csv         one row per student x exercise: status, score, cases, message
    feedback/STUDENT.md each student's points, and the hint of every failing case

It never writes into an earlier run's folder: if `graded/` exists, this run goes to
`graded-2/` (then -3, ...), and each file is written through a temp file + rename.

Left out: nbgrader's database, manual grading, late penalties.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from minitf import course
from minitf.course import check as course_check
from minitf.course import datafile, hidden, sandbox
from minitf.course.files import free_path, output_folder, write_atomic
from minitf.course.notebooks import to_notebook, to_solution, to_student

RESULT_FIELDS = ["student", "lesson", "exercise", "status", "score", "max_score",
                 "cases_passed", "cases", "message"]  # fmt: skip
POINTS_POSSIBLE = "Points Possible"

# --- export ----------------------------------------------------------------------------


def solution_module(number: int) -> object:
    """The definitions of lesson `number`'s solution version (the reference answers)."""
    source = to_solution(course.lesson_path(number).read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / course.lesson_path(number).name
        path.write_text(source, encoding="utf-8")
        return course_check.load_definitions(path)


def hidden_test_code(lesson: int, exercise: str, stored: dict) -> str:
    """The hidden tests of an nbgrader test cell: the exercise's cases, inline."""
    blob = base64.b64encode(datafile.dumps(stored)).decode("ascii")
    return (f"from minitf.course.hidden import grade_here\n"
            f'grade_here({lesson}, "{exercise}", globals(), "{blob}")')


def export(numbers: list[int], to: Path, *, secret: str | None = None,
           secret_file: Path | None = None, gradescope: bool = False) -> list[Path]:
    """Write source and release notebooks and hidden cases for the given lessons."""
    to = output_folder(Path(to), "--to")
    # what holds expected outputs is for the teacher's eyes only (owner-only folders)
    private = [to / "hidden_tests", to / "source"] + ([to / "gradescope"] if gradescope else [])
    for folder in private:
        output_folder(folder, "--to").chmod(0o700)
    tests = to / "hidden_tests"
    key = hidden.read_secret(secret, secret_file or tests / "secret.key")
    written = []
    for number in numbers:
        path = course.lesson_path(number)
        checks = course_check.load_checks(number)
        ungraded = [n for n, fn in checks if hidden.grading_of(fn) is None]
        if ungraded:
            raise ValueError(f"lesson {number} has exercises without hidden cases "
                             f"({', '.join(ungraded)}): add @graded(...) to their checks")
        cases = hidden.make_cases(number, key, checks, solution_module(number))
        written.append(datafile.save(hidden.cases_path(tests, number), cases))
        source = path.read_text(encoding="utf-8")
        exercises = cases["exercises"]
        teacher_cells = {n: (e["points"], hidden_test_code(number, n, e))
                         for n, e in exercises.items()}
        student_cells = {n: (e["points"], None) for n, e in exercises.items()}
        functions = {n: hidden.grading_of(fn).names(n) for n, fn in checks}
        for kind, text, graded in (("source", source, teacher_cells),
                                   ("release", to_student(source), student_cells)):
            target = output_folder(to / kind / path.stem, "--to") / (path.stem + ".ipynb")
            notebook = json.dumps(to_notebook(text, graded, functions), indent=1,
                                  ensure_ascii=False)
            written.append(write_atomic(target, notebook + "\n"))
        if gradescope:
            from minitf.course.gradescope import write_autograder

            zip_path = to / "gradescope" / f"{path.stem}.zip"
            written.append(write_autograder(zip_path, number, cases))
    (to / "submitted").mkdir(exist_ok=True)
    written.append(write_atomic(to / "README.md", _README))
    return written


_README = """\
# minitf course export

- `release/`: give these notebooks to students.
- `source/`: the full lessons with solutions and hidden tests (nbgrader source notebooks:
  `nbgrader generate_assignment NN_name` makes `release/` from them).
- `hidden_tests/`: the hidden cases and the secret they were drawn with: keep them to
  yourself.
- `submitted/STUDENT/...`: put collected work here (one folder per student), then run
  `minitf teacher grade submitted`; the gradebook, results and feedback go to `graded/`.
- `gradescope/`: with `--gradescope`, one autograder zip per lesson.
"""


# --- grading ---------------------------------------------------------------------------


@dataclass
class Report:
    """What one `grade` run produced."""

    folder: Path  # where gradebook.csv, results.csv and feedback/ are
    grades: dict[str, list[hidden.ExerciseGrade]]  # per student, in gradebook order
    seconds: float
    isolated: bool  # whether every submission ran with its file system closed off


def default_tests_folder(submissions: Path) -> Path:
    """`hidden_tests/` beside the submissions folder (an export)."""
    return Path(submissions).resolve().parent / "hidden_tests"


def load_hidden(tests: Path) -> dict[int, dict]:
    """{lesson: its stored hidden cases} from a `hidden_tests/` folder."""
    tests = Path(tests)
    found = {}
    for number, _ in course.list_lessons():
        path = hidden.cases_path(tests, number)
        if path.is_file():
            found[number] = datafile.load(path, rebuild=True)
    if not found:
        raise ValueError(f"no hidden cases in {tests} (NN_cases.npz): export the lessons with "
                         "`minitf teacher export N --to DIR` and grade DIR/submitted, or pass "
                         "--tests DIR/hidden_tests")
    return found


def find_submissions(student: Path, numbers: list[int]) -> dict[int, Path]:
    """{lesson number: file} in a student's folder; a notebook wins over a script."""
    found: dict[int, Path] = {}
    for suffix in (".py", ".ipynb"):
        for number in numbers:
            stem = course.lesson_path(number).stem
            matches = sorted(student.rglob(stem + suffix))
            if matches:
                found[number] = matches[0]
    return found


def grade_file(path: Path | None, number: int, stored: dict, limits: sandbox.Limits,
               cpu: int = 0) -> tuple[list[hidden.ExerciseGrade], bool]:
    """The grades of one file for lesson `number` on its `stored` hidden cases (`path`
    None: nothing handed in), and whether it ran with its file system closed off."""
    checks = dict(course_check.load_checks(number))
    exercises = stored["exercises"]
    gradings = {n: hidden.grading_of(checks[n]) if n in checks else None for n in exercises}
    outcomes: dict[str, dict] = {}
    if path is None:
        outcomes = {n: {"error": "missing", "message": "no file handed in"} for n in exercises}
    else:
        try:
            body = course_check.definitions_body(path)
        except (ValueError, FileNotFoundError) as err:
            outcomes = {n: {"error": "failing", "message": f"your file could not be read: {err}"}
                        for n in exercises}  # fmt: skip
        else:
            for name, grading in gradings.items():
                problem = hidden.borrowed_problem(body, name, grading)
                if problem:
                    outcomes[name] = {"error": "borrowed", "message": problem}
    isolated = True
    to_run = {n: e["args"] for n, e in exercises.items() if n not in outcomes}
    if to_run:
        run = sandbox.run_submission(path, number, to_run, checks_folder=course.checks_dir(),
                                     limits=limits, cpu=cpu)
        outcomes.update(run.outcomes)
        isolated = run.isolated
    grades = [hidden.score_exercise(number, n, exercises[n], gradings[n], outcomes[n])
              for n in exercises]
    return grades, isolated


def grade(submissions: Path, out: Path | None = None, tests: Path | None = None, *,
          limits: sandbox.Limits | None = None, jobs: int | None = None,
          progress: bool = True) -> Report:
    """Grade every student folder in `submissions` on the hidden cases; write the
    gradebook, results and feedback into a new folder (see the module docstring)."""
    start = time.perf_counter()
    limits = limits or sandbox.Limits()
    submissions = Path(submissions)
    if not submissions.is_dir():
        raise FileNotFoundError(f"no submissions folder at {submissions}")
    stored = load_hidden(Path(tests) if tests is not None else default_tests_folder(submissions))
    students = sorted(p for p in submissions.iterdir() if p.is_dir())
    if not students:
        raise ValueError(f"{submissions} has no student folders (expected {submissions}/NAME/...)")
    out = Path(out) if out is not None else submissions.resolve().parent / "graded"
    parent = output_folder(out.parent, "--out")
    numbers = sorted(stored)
    tasks = []
    for student in students:
        files = find_submissions(student, numbers)
        tasks += [(student.name, n, files.get(n)) for n in numbers]
    jobs = jobs or max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                       else os.cpu_count() or 1)

    def one(i_task: tuple[int, tuple]) -> tuple[list[hidden.ExerciseGrade], bool]:
        i, (student, number, path) = i_task
        result = grade_file(path, number, stored[number], limits, cpu=i % jobs)
        if progress:
            got = sum(g.score for g in result[0])
            print(f"  {student} lesson {number}: {got:g}/{sum(g.points for g in result[0]):g}",
                  flush=True)
        return result

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(one, enumerate(tasks)))
    grades_by = {}
    for (student, _, _), (grades, _) in zip(tasks, results, strict=True):
        grades_by.setdefault(student, []).extend(grades)
    names = [s.name for s in students]
    folder = _write_outputs(parent, out.name, names, grades_by)
    return Report(folder, {s: grades_by[s] for s in names}, time.perf_counter() - start,
                  all(isolated for _, isolated in results))


def _write_outputs(parent: Path, name: str, students: list[str],
                   grades_by: dict[str, list[hidden.ExerciseGrade]]) -> Path:
    """Write the run's files into a temp folder, then rename it to the first free name."""
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{name}.tmp-"))
    try:
        columns = [(g.lesson, g.exercise, g.points) for g in grades_by[students[0]]]
        book = [["student", *[f"{lesson:02d} {ex}" for lesson, ex, _ in columns], "total"],
                [POINTS_POSSIBLE, *[f"{p:g}" for *_, p in columns],
                 f"{sum(p for *_, p in columns):g}"]]
        for student in students:
            scores = [g.score for g in grades_by[student]]
            book.append([student, *[f"{s:g}" for s in scores], f"{round(sum(scores), 2):g}"])
        write_atomic(tmp / "gradebook.csv", _csv(book))
        rows = [RESULT_FIELDS] + [
            [student, g.lesson, g.exercise, g.status, f"{g.score:g}", f"{g.points:g}",
             sum(c.passed for c in g.cases), len(g.cases), g.message]
            for student in students for g in grades_by[student]]
        write_atomic(tmp / "results.csv", _csv(rows))
        (tmp / "feedback").mkdir()
        for student in students:
            write_atomic(tmp / "feedback" / f"{student}.md", feedback(student, grades_by[student]))
        folder = free_path(parent / name)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def _csv(rows: list[list]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def feedback(student: str, grades: list[hidden.ExerciseGrade]) -> str:
    """A student's feedback file (Markdown): points per exercise, and what to look at."""
    total, possible = sum(g.score for g in grades), sum(g.points for g in grades)
    lines = [f"# Feedback for {student}", "",
             f"**{round(total, 2):g} of {possible:g} points.** Each exercise was run on hidden "
             "test cases (new inputs, not the public checks); its points are shared equally "
             "among them. Locations count notebook cells from the top, markdown cells "
             "included.", ""]
    for lesson in sorted({g.lesson for g in grades}):
        mine = [g for g in grades if g.lesson == lesson]
        got, out_of = sum(g.score for g in mine), sum(g.points for g in mine)
        lines += [f"## Lesson {lesson}: {course.lesson_path(lesson).stem} "
                  f"({round(got, 2):g} / {out_of:g})", "",
                  "| exercise | points | result |", "|---|---|---|"]
        for g in mine:
            lines.append(f"| `{g.exercise}` | {g.score:g} / {g.points:g} | "
                         f"{_cell(g.message or g.status)} |")
        lines.append("")
        for g in mine:
            if g.status == "passing":
                continue
            lines += [f"### `{g.exercise}`: {g.status}", ""]
            problems = [c.problem for c in g.cases if not c.passed]
            if problems:
                shown = sorted(set(problems), key=problems.index)[:5]
                lines += [f"- {p}" for p in shown]
                if len(set(problems)) > len(shown):
                    lines.append(f"- ... and {len(set(problems)) - len(shown)} more")
            elif g.message:
                lines.append(f"- {g.message}")
            if g.hint and g.status not in ("not started", "missing"):
                lines += ["", f"Hint: {g.hint}"]
            lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
