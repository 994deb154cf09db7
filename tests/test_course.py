"""The lesson tooling: student/solution versions, notebooks, check reports, teacher
export and grading, and the CLI around them."""

from __future__ import annotations

import csv
import json
import shutil
import textwrap
from pathlib import Path

import pytest

from minitf import cli, course
from minitf.course import check as course_check
from minitf.course import notebooks
from minitf.course import teacher as course_teacher

SOURCE = textwrap.dedent('''\
    # %% [markdown]
    # # A lesson
    #
    # Some *text*.

    # %%
    import math

    SCALE = 2
    heavy = sum(range(10))  # not a constant: the checker must not run it


    # %%
    def double(x: int) -> int:
        """Twice x."""
        if x is None:
            return 0
        ### BEGIN SOLUTION
        return SCALE * x
        ### END SOLUTION


    class Box:
        def size(self) -> float:
            ### BEGIN SOLUTION
            return math.pi
            ### END SOLUTION


    # %%
    raise RuntimeError("a heavy cell the checker must skip")
    ''')

CHECKS = textwrap.dedent('''\
    def check_double(module):
        assert module.double(3) == 6, "double should multiply by two"


    def check_box(module):
        assert abs(module.Box().size() - 3.14159) < 1e-3, "size should be pi"
    ''')


def test_student_version_replaces_regions_keeping_indentation() -> None:
    student = notebooks.to_student(SOURCE)
    assert notebooks.BEGIN_SOLUTION not in student and "SCALE * x" not in student
    assert '\n    raise NotImplementedError("TODO: write double")\n' in student
    assert '\n        raise NotImplementedError("TODO: write size")\n' in student
    assert "if x is None:" in student  # code outside the region stays
    compile(student, "student", "exec")


def test_solution_version_drops_markers_only() -> None:
    solution = notebooks.to_solution(SOURCE)
    assert notebooks.BEGIN_SOLUTION not in solution and notebooks.END_SOLUTION not in solution
    assert "return SCALE * x" in solution
    assert len(solution.splitlines()) == len(SOURCE.splitlines()) - 4


@pytest.mark.parametrize("bad", [
    "### BEGIN SOLUTION\n",
    "### END SOLUTION\n",
    "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n",
])
def test_unbalanced_markers_raise(bad: str) -> None:
    with pytest.raises(ValueError, match="line"):
        notebooks.to_student(bad)


def test_cells_and_notebook() -> None:
    cells = notebooks.parse_cells(SOURCE)
    assert [c.kind for c in cells] == ["markdown", "code", "code", "code"]
    assert cells[0].source.startswith("# A lesson\n\nSome *text*.")
    notebook = json.loads(json.dumps(notebooks.to_notebook(notebooks.to_student(SOURCE))))
    assert notebook["nbformat"] == 4
    assert [c["cell_type"] for c in notebook["cells"]] == ["markdown", "code", "code", "code"]
    assert notebook["cells"][2]["metadata"]["nbgrader"]["solution"] is True
    assert all(c["outputs"] == [] for c in notebook["cells"] if c["cell_type"] == "code")
    # the notebook's code is the script again
    assert "def double" in notebooks.notebook_code(notebook)
    nbformat = pytest.importorskip("nbformat")
    nbformat.validate(nbformat.from_dict(notebook))


def test_definitions_only_skips_heavy_cells(tmp_path: Path) -> None:
    path = tmp_path / "lesson.py"
    path.write_text(notebooks.to_solution(SOURCE), encoding="utf-8")
    module = course_check.load_definitions(path)
    assert module.double(4) == 8 and module.SCALE == 2
    assert not hasattr(module, "heavy")


def _with_checks(tmp_path: Path, source: str) -> tuple[Path, Path]:
    checks = tmp_path / "checks"
    checks.mkdir()
    (checks / "07_checks.py").write_text(CHECKS, encoding="utf-8")
    path = tmp_path / "07_lesson.py"
    path.write_text(source, encoding="utf-8")
    return path, checks


def test_check_states(tmp_path: Path) -> None:
    path, checks = _with_checks(tmp_path, notebooks.to_solution(SOURCE))
    assert [r.status for r in course_check.check_file(7, path, checks)] == ["passing"] * 2
    path.write_text(notebooks.to_student(SOURCE), encoding="utf-8")
    assert [r.status for r in course_check.check_file(7, path, checks)] == ["not started"] * 2
    path.write_text(notebooks.to_solution(SOURCE).replace("SCALE * x", "x + 1")
                    .replace("return math.pi", "return 1 / 0"), encoding="utf-8")
    results = course_check.check_file(7, path, checks)
    assert [r.status for r in results] == ["failing"] * 2
    assert results[0].message == "double should multiply by two"
    assert "ZeroDivisionError" in results[1].message and "line" in results[1].message
    report = course_check.format_report(results)
    assert "0/2 exercises passing" in report


def test_check_a_notebook_and_a_broken_file(tmp_path: Path) -> None:
    path, checks = _with_checks(tmp_path, "")
    nb = tmp_path / "07_lesson.ipynb"
    notebook = notebooks.to_notebook(notebooks.to_solution(SOURCE))
    nb.write_text(json.dumps(notebook), encoding="utf-8")
    assert all(r.status == "passing" for r in course_check.check_file(7, nb, checks))
    path.write_text("def double(x:\n", encoding="utf-8")
    with pytest.raises(ValueError, match="can't parse"):
        course_check.check_file(7, path, checks)


def test_cli_lesson_and_check(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["lesson", "1", "--out", str(tmp_path)]) == 0
    student = tmp_path / course.lesson_path(1).name
    assert cli.main(["check", "1", str(student)]) == 1
    assert "not started" in capsys.readouterr().out
    assert cli.main(["lesson", "1", "--solution", "--notebook", "--out", str(tmp_path)]) == 0
    notebook = student.with_suffix(".ipynb")
    assert json.loads(notebook.read_text(encoding="utf-8"))["nbformat"] == 4
    assert cli.main(["check", "1", str(notebook)]) == 0
    assert cli.main(["lesson", "99"]) == 2
    assert cli.main(["check", "1", str(tmp_path / "missing.py")]) == 2
    assert "error" in capsys.readouterr().err


def test_teacher_export_and_grade(tmp_path: Path) -> None:
    export = tmp_path / "course"
    course_teacher.export([1], export)
    stem = course.lesson_path(1).stem
    release = export / "release" / stem / f"{stem}.ipynb"
    assert "NotImplementedError" in release.read_text(encoding="utf-8")
    assert "BEGIN SOLUTION" not in release.read_text(encoding="utf-8")
    assert (export / "hidden_tests" / "01_checks.py").is_file()
    # two students: one hands in the solution, one the untouched release
    good = export / "submitted" / "alice" / stem
    good.mkdir(parents=True)
    shutil.copy(export / "source" / stem / f"{stem}.ipynb", good)
    lazy = export / "submitted" / "bob" / stem
    lazy.mkdir(parents=True)
    shutil.copy(release, lazy)
    grades = tmp_path / "grades.csv"
    assert cli.main(["teacher", "grade", str(export / "submitted"), "--csv", str(grades)]) == 0
    with grades.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    n = len(course_check.load_checks(1))
    assert len(rows) == 2 * n
    assert {r["status"] for r in rows if r["student"] == "alice"} == {"passing"}
    assert {r["status"] for r in rows if r["student"] == "bob"} == {"not started"}
    assert sum(int(r["score"]) for r in rows) == n


def test_quick_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINITF_QUICK", "1")
    assert course.quick_mode()
    monkeypatch.setenv("MINITF_QUICK", "0")
    monkeypatch.setattr("sys.argv", ["lesson.py"])
    assert not course.quick_mode()
    monkeypatch.setattr("sys.argv", ["lesson.py", "--quick"])
    assert course.quick_mode()


def _gpt2_files(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name in ("vocab.json", "merges.txt"):
        (folder / name).write_text("{}" if name.endswith("json") else "#version: 0.2\n",
                                   encoding="utf-8")
    return folder


def test_gpt2_dir_looks_at_the_variable_the_shared_folder_then_transformers_cache(
        tmp_path, monkeypatch):
    monkeypatch.setattr(course, "REPO_ROOT", tmp_path / "checkout")  # no shared/ beside it
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("MINITF_GPT2_DIR", raising=False)
    assert course.gpt2_dir() is None
    cached = _gpt2_files(tmp_path / "hf/hub/models--openai-community--gpt2/snapshots/abc123")
    assert course.gpt2_dir() == cached
    shared = _gpt2_files(tmp_path / "shared/data/gpt2")
    assert course.gpt2_dir() == shared
    mine = _gpt2_files(tmp_path / "mine")
    monkeypatch.setenv("MINITF_GPT2_DIR", str(mine))
    assert course.gpt2_dir() == mine
    (mine / "merges.txt").unlink()  # half a tokenizer is not one
    assert course.gpt2_dir() == shared
