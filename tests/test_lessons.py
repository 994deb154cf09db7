"""Every lesson runs in quick mode, and its checks pass on the solution and report
"not started" (without crashing) on the student version."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from minitf import course
from minitf.course import check as course_check
from minitf.course import notebooks

LESSONS = course.list_lessons()
IDS = [path.stem for _, path in LESSONS]
QUICK_TIMEOUT_S = 300  # the budget is 60 s on an idle 2-core CPU; shared CI machines are busier


@pytest.mark.parametrize(("number", "path"), LESSONS, ids=IDS)
def test_lesson_runs_in_quick_mode(number: int, path: Path, tmp_path: Path) -> None:
    env = {**os.environ, "MINITF_QUICK": "1", "MINITF_FIGURES_DIR": str(tmp_path / "figures"),
           "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=QUICK_TIMEOUT_S, encoding="utf-8")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "all numbers as expected" in proc.stdout
    assert list((tmp_path / "figures").glob(f"{number:02d}_*.png")), "the lesson wrote no figure"


@pytest.mark.parametrize(("number", "path"), LESSONS, ids=IDS)
def test_checks_pass_on_solution(number: int, path: Path, tmp_path: Path) -> None:
    notebooks.write_lesson(number, tmp_path, student=False)
    results = course_check.check_file(number, tmp_path / path.name)
    assert results, "the lesson has no exercises"
    assert all(r.status == course_check.PASSING for r in results), course_check.format_report(
        results)


@pytest.mark.parametrize(("number", "path"), LESSONS, ids=IDS)
def test_student_version_is_not_started(number: int, path: Path, tmp_path: Path) -> None:
    notebooks.write_lesson(number, tmp_path, student=True)
    student = (tmp_path / path.name).read_text(encoding="utf-8")
    assert notebooks.BEGIN_SOLUTION not in student
    results = course_check.check_file(number, tmp_path / path.name)
    assert all(r.status == course_check.NOT_STARTED for r in results), (
        course_check.format_report(results))


@pytest.mark.parametrize(("number", "path"), LESSONS, ids=IDS)
def test_lesson_has_the_parts(number: int, path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for part in ("**Goal:**", "## What you should see", "## Where this lives in minitf/",
                 "glossary.md", "course.save_figure("):
        assert part in text, f"{path.name} lacks {part!r}"
    n_exercises = len(course_check.load_checks(number))
    assert 1 <= n_exercises <= 4
    assert text.count(notebooks.BEGIN_SOLUTION) >= n_exercises
