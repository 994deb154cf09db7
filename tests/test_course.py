"""The lesson tooling: student/solution versions, notebooks, check reports, teacher
export and grading, and the CLI around them."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from minitf import cli, course
from minitf.course import check as course_check
from minitf.course import files, notebooks
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
    assert "grade_here" not in release.read_text(encoding="utf-8")
    source = (export / "source" / stem / f"{stem}.ipynb").read_text(encoding="utf-8")
    assert "### BEGIN SOLUTION" in source and "### BEGIN HIDDEN TESTS" in source
    # hidden cases, not the public checks, and only in the teacher's folder
    assert (export / "hidden_tests" / "01_cases.npz").is_file()
    assert (export / "hidden_tests" / "secret.key").is_file()
    assert not (export / "hidden_tests" / "01_checks.py").exists()
    assert not list((export / "release").rglob("*.npz"))
    for private in ("hidden_tests", "source"):  # they hold the expected outputs
        assert (export / private).stat().st_mode & 0o077 == 0
    # two students: one hands in the solution, one the untouched release
    good = export / "submitted" / "alice" / stem
    good.mkdir(parents=True)
    solved = json.loads(source)
    for cell in solved["cells"]:
        cell["source"] = notebooks.to_solution("".join(cell["source"]))
    (good / f"{stem}.ipynb").write_text(json.dumps(solved), encoding="utf-8")
    lazy = export / "submitted" / "bob" / stem
    lazy.mkdir(parents=True)
    shutil.copy(release, lazy)
    assert cli.main(["teacher", "grade", str(export / "submitted")]) == 0
    with (export / "graded" / "results.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    n = len(course_check.load_checks(1))
    assert len(rows) == 2 * n
    assert {r["status"] for r in rows if r["student"] == "alice"} == {"passing"}
    assert {r["status"] for r in rows if r["student"] == "bob"} == {"not started"}
    assert sum(float(r["score"]) for r in rows) == sum(float(r["max_score"]) for r in rows) / 2
    feedback = (export / "graded" / "feedback" / "bob.md").read_text(encoding="utf-8")
    assert feedback.startswith("# Feedback for bob") and "not started" in feedback


def test_lesson_never_overwrites_the_learners_work(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    name = course.lesson_path(1).name
    assert cli.main(["lesson", "1", "--out", str(tmp_path)]) == 0
    mine = tmp_path / name
    mine.write_text(mine.read_text(encoding="utf-8") + "\n# my work\n", encoding="utf-8")
    mine_before = mine.read_text(encoding="utf-8")
    capsys.readouterr()
    assert cli.main(["lesson", "1", "--out", str(tmp_path)]) == 0  # again: beside it
    out = capsys.readouterr().out
    assert "left as it is" in out and mine.read_text(encoding="utf-8") == mine_before
    fresh = tmp_path / name.replace(".py", ".student.py")
    assert fresh.is_file() and str(fresh) in out
    assert cli.main(["lesson", "1", "--solution", "--out", str(tmp_path)]) == 0
    solution = tmp_path / name.replace(".py", ".solution.py")
    assert "BEGIN SOLUTION" not in solution.read_text(encoding="utf-8")
    assert mine.read_text(encoding="utf-8") == mine_before
    assert cli.main(["lesson", "1", "--solution", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [name, fresh.name, solution.name])  # the same content again makes no new file


def test_a_killed_write_leaves_the_file_whole(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed after writing and before renaming, the file is still the old one, whole."""
    target = tmp_path / "grades.csv"
    target.write_text("my work\n", encoding="utf-8")
    script = textwrap.dedent(f"""
        import os, time
        from minitf.course import files
        def slow(src, dst):
            print("written", flush=True)
            time.sleep(60)
        os.replace = slow
        files.write_atomic({str(target)!r}, "x" * 10_000_000)
        """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "written"
    proc.kill()
    proc.wait()
    assert target.read_text(encoding="utf-8") == "my work\n"
    # an error while writing (a full disk): the old file stays, the temp file goes
    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)  # inside write_atomic (minitf.checkpoint)
    with pytest.raises(OSError):
        files.write_atomic(target, "new")
    assert target.read_text(encoding="utf-8") == "my work\n"
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".grades.csv.")] == [
        "grades.csv"]
    assert len(list(tmp_path.iterdir())) == 2  # the killed run's temp file, nothing else


@pytest.mark.parametrize("command", [["lesson", "1", "--out"], ["teacher", "export", "1", "--to"]])
def test_an_output_path_that_is_a_file(tmp_path: Path, command: list[str],
                                       capsys: pytest.CaptureFixture) -> None:
    afile = tmp_path / "notes.txt"
    afile.write_text("mine", encoding="utf-8")
    assert cli.main([*command, str(afile)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(afile) in err and "is a file" in err
    assert afile.read_text(encoding="utf-8") == "mine"


def test_a_read_only_output_folder(tmp_path: Path, capsys: pytest.CaptureFixture,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() != 0:  # root writes anywhere: there, make the OS say no
        locked.chmod(0o555)
    else:
        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied")
        monkeypatch.setattr(files.tempfile, "NamedTemporaryFile", refuse)
    try:
        assert cli.main(["lesson", "1", "--out", str(locked)]) == 2
    finally:
        locked.chmod(0o755)
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(locked) in err and "not writable" in err


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


def test_the_library_never_imports_the_course():
    """Only the command table (cli.py) reaches into the course wing; the library below it
    (model, train, lens, ...) reads without it."""
    import ast

    package = Path(course.__file__).resolve().parents[1]
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package).as_posix()
        if relative.startswith("course/") or relative in {"cli.py", "__main__.py"}:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [f"{node.module}.{a.name}" for a in node.names]
                     if isinstance(node, ast.ImportFrom) and node.module else [])
            assert not [n for n in names if n.startswith("minitf.course")], (
                f"minitf/{relative} imports the course wing")
