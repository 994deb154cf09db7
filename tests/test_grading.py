"""Grading a class: hidden cases from a secret, sandboxed submissions, borrowed answers,
points and feedback, nbgrader and Gradescope. The whole-class test grades thirteen made-up
students (correct, partly wrong, hanging, crashing, malicious, borrowed, ...) end to end."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from minitf import cli, course
from minitf.course import borrowed, check, datafile, hidden, landlock, notebooks, sandbox, teacher

SECRET = "a class secret that nobody guesses"
LESSONS = [n for n, _ in course.list_lessons()]
TIME_S = 6.0  # per exercise in the class test: a hang costs this, a busy CI machine needs it


def _stem(number: int) -> str:
    return course.lesson_path(number).stem


def _solution(number: int) -> str:
    return notebooks.to_solution(course.lesson_path(number).read_text(encoding="utf-8"))


def _replace(text: str, old: str, new: str) -> str:
    assert text.count(old) >= 1, f"{old!r} not in the lesson"
    return text.replace(old, new, 1)


# --- secrets and hidden cases ----------------------------------------------------------


def test_cases_need_the_secret(tmp_path: Path) -> None:
    checks = check.load_checks(1)
    solution = teacher.solution_module(1)
    a = hidden.make_cases(1, SECRET.encode(), checks, solution)["exercises"]
    b = hidden.make_cases(1, b"another long secret of a teacher", checks, solution)["exercises"]
    assert a["utf8_encode"]["args"] != b["utf8_encode"]["args"]
    again = hidden.make_cases(1, SECRET.encode(), checks, solution)["exercises"]
    assert again["utf8_encode"]["args"] == a["utf8_encode"]["args"]  # reproducible by its owner
    # the public code with a guessable seed (or the secret as a seed) draws other cases
    for name in ("utf8_encode", "token_to_text"):
        draw = hidden.grading_of(dict(checks)[name]).cases
        guesses = {tuple(draw(np.random.default_rng(seed))) for seed in
                   [*range(1000), list(SECRET.encode()), int.from_bytes(SECRET.encode(), "big")]}
        assert tuple(a[name]["args"]) not in guesses
    with pytest.raises(ValueError, match="16 random characters"):
        hidden.read_secret("1234", None)
    key = tmp_path / "secret.key"
    first = hidden.read_secret(None, key)  # made, random, private
    assert len(first) == 64 and key.stat().st_mode & 0o777 == 0o600
    assert hidden.read_secret(None, key) == first  # and kept


def test_every_exercise_has_hidden_cases() -> None:
    for number in LESSONS:
        for name, fn in check.load_checks(number):
            grading = hidden.grading_of(fn)
            assert grading is not None, f"lesson {number} {name} has no @graded hidden cases"
            assert grading.points > 0 and grading.hint
            for path in grading.borrowed:
                borrowed.resolve(path)  # every borrowed name exists


@pytest.mark.parametrize("number", LESSONS)
def test_solution_full_marks_student_not_started(number: int, tmp_path: Path) -> None:
    """In-process, with the traps on: the lesson's solution scores every point, and its
    source passes the borrowed-answer reading; the student version is "not started"."""
    checks = dict(check.load_checks(number))
    stored = hidden.make_cases(number, SECRET.encode(), list(checks.items()),
                               teacher.solution_module(number))["exercises"]
    source = course.lesson_path(number).read_text(encoding="utf-8")
    for kind, text in (("solution", notebooks.to_solution(source)),
                       ("student", notebooks.to_student(source))):
        path = tmp_path / kind / course.lesson_path(number).name
        path.parent.mkdir()
        path.write_text(text, encoding="utf-8")
        module, body = check.load_definitions(path), check.definitions_body(path)
        for name, cases in stored.items():
            grading = hidden.grading_of(checks[name])
            assert borrowed.uses_borrowed(body, name, grading.borrowed, grading.forbidden) is None
            inputs = datafile.loads(datafile.dumps(cases["args"]), rebuild=True)
            outcome = hidden.run_cases(module, name, grading, inputs)
            if "cases" in outcome:
                outcome["cases"] = datafile.loads(datafile.dumps(outcome["cases"]))
            result = hidden.score_exercise(number, name, cases, grading, outcome)
            want = ("passing", cases["points"]) if kind == "solution" else ("not started", 0)
            assert (result.status, result.score) == want, (kind, name, result.message)


BORROWED = [(n, name, path) for n in LESSONS for name, fn in check.load_checks(n)
            for path in hidden.grading_of(fn).borrowed]


@pytest.mark.parametrize(("number", "exercise", "path"), BORROWED,
                         ids=[f"{n}-{e}-{p.rsplit('.', 1)[-1]}" for n, e, p in BORROWED])
def test_borrowed_answers_score_zero(number: int, exercise: str, path: str) -> None:
    grading = hidden.grading_of(dict(check.load_checks(number))[exercise])
    holder = borrowed.resolve(path)[0]
    owner = holder.__name__ if isinstance(holder, type(os)) else holder.__module__
    # named in the source: `minitf.bpe.merge(...)` after `import minitf.bpe`
    source = f"import {owner}\n\ndef {exercise}(*args):\n    return {path}(*args)\n"
    body = check.definitions_only(source).body
    message = borrowed.uses_borrowed(body, exercise, grading.borrowed, grading.forbidden)
    assert message and path.rsplit(".", 1)[-1] in message and "0 points" in message
    # hidden from the reading, caught while it runs
    if not callable(borrowed.resolve(path)[2]):
        return
    namespace = {}
    for function in grading.names(exercise):  # every function of the exercise borrows it
        exec(f"import inspect\nimport {owner}\n"  # noqa: S102 - a made-up submission
             f"def {function}(*args):\n"
             f"    target = {owner}\n"
             f"    for part in {path.removeprefix(owner + '.').split('.')!r}:\n"
             f"        target = dict(inspect.getmembers(target))[part]\n"
             f"    try:\n        return target(*args)\n    except BaseException:\n"
             f"        return 0\n", namespace)
    case = (grading.names(exercise)[0],) if grading.functions else ()
    plain = dataclasses.replace(grading, prepare=None, run=None)  # the made-up call as it is
    outcome = hidden.run_cases(namespace, exercise, plain, [case])
    assert outcome["error"] == "borrowed" and path in outcome["message"]
    assert getattr(borrowed.resolve(path)[2], "__name__", "") != "trap"  # put back afterwards


@pytest.mark.parametrize("line", ['return chr(code_point).encode("utf-8")',
                                  'return bytes(chr(code_point), "utf-8")',
                                  'return getattr(chr(code_point), "en" + "code")()',
                                  "return helper(code_point)"])
def test_forbidden_shortcuts(line: str) -> None:
    grading = hidden.grading_of(dict(check.load_checks(1))["utf8_encode"])
    source = (f"import codecs\n\ndef helper(cp):\n    return codecs.encode(chr(cp))\n\n"
              f"def utf8_encode(code_point):\n    {line}\n")
    message = borrowed.uses_borrowed(check.definitions_only(source).body, "utf8_encode",
                                     grading.borrowed, grading.forbidden)
    assert message and "0 points" in message


@pytest.mark.parametrize("outcome", [
    {"error": "x"},  # no message
    {"cases": [{"output": 1}]},  # fewer cases than were stored
    {"cases": [{"output": 1}, {}]},  # a case with neither an output nor an error
    {"cases": [{"output": 1}, {"error": 3, "message": None}]},
    ["not", "a", "dict"],
])
def test_a_forged_results_file_is_a_crash_not_a_grader_error(outcome) -> None:
    """A submission runs in the process that writes its results, so it can write anything
    there: the exercise scores 0 as crashed, and the class's grading goes on."""
    stored = {"points": 2.0, "args": [(1,), (2,)], "expected": [1, 2]}
    grade = hidden.score_exercise(1, "utf8_encode", stored, None, outcome)
    assert (grade.status, grade.score) == ("crashed", 0.0)
    assert grade.message == "its results could not be read"


def test_comparisons_say_what_is_wrong_not_what_is_right() -> None:
    want = np.arange(6.0).reshape(2, 3)
    assert hidden.close()(want + 1e-7, want) is None
    assert hidden.close()(want.T, want) == "has shape (3, 2) where (2, 3) is expected"
    assert hidden.equal([1, 2], (1, 2)) is None
    assert hidden.equal({(1, 2): 1}, {(1, 2): 2}) == (
        "is wrong at key (1, 2): it is the wrong number")
    assert hidden.equal(b"ab", [97, 98]) == "is bytes where a list is expected"
    assert "bool" in hidden.equal(np.ones(3, int), np.ones(3, bool))
    assert "5" not in hidden.close()(np.array([4.0]), np.array([5.0]))


def test_datafile_reads_no_objects(tmp_path: Path) -> None:
    import jax.numpy as jnp

    from minitf.model import Config

    value = {"a": (1, 2.5, "x", b"\x00", None, {3}), (1, 2): [np.eye(2), jnp.ones(3)],
             "config": Config(vocab_size=5, n_layer=1, n_head=1, d_model=4, d_mlp=8, max_len=3)}
    back = datafile.load(datafile.save(tmp_path / "v.npz", value), rebuild=True)
    assert back["a"] == value["a"] and back["config"] == value["config"]
    assert type(back[(1, 2)][1]).__module__.startswith("jax")
    with pytest.raises(ValueError, match="unreadable"):  # an untrusted read builds no objects
        datafile.load(tmp_path / "v.npz")
    del value["config"]
    plain = datafile.load(datafile.save(tmp_path / "w.npz", value))
    assert isinstance(plain[(1, 2)][1], np.ndarray)  # and no jax arrays either
    with pytest.raises(TypeError):
        datafile.dumps(object())


# --- the sandbox -----------------------------------------------------------------------


def test_sandbox_limits_and_isolation(tmp_path: Path) -> None:
    """Hanging, exhausting memory, exiting, writing and reading outside, printing
    megabytes and signalling the grader: each costs only its own exercise."""
    stored = hidden.make_cases(1, SECRET.encode(), check.load_checks(1),
                               teacher.solution_module(1))["exercises"]
    secret_file = tmp_path / "teacher" / "hidden.txt"
    secret_file.parent.mkdir()
    secret_file.write_text("expected outputs", encoding="utf-8")
    outside = tmp_path / "teacher" / "written.txt"
    signal_attack = landlock.abi_version() >= 6  # else a kill would reach this test runner
    text = _solution(1)
    text = _replace(text, "    if code_point < 0x80:\n",
                    "    print('x' * 100_000)\n    import numpy\n    numpy.ones((60_000, 60_000))\n"
                    "    if code_point < 0x80:\n")
    text = _replace(text, "    keep = [", "    while True:\n        pass\n    keep = [")
    attacks = [f"open({str(outside)!r}, 'w').write('x')", f"open({str(secret_file)!r}).read()",
               "open('inside.txt', 'w').write('fine')"]
    if signal_attack:
        attacks.append("__import__('os').kill(__import__('os').getppid(), 9)")
    probe = "".join(f"    try:\n        {a}\n        hits.append({i})\n    except OSError:\n"
                    "        pass\n" for i, a in enumerate(attacks))
    text = _replace(text, "    to_byte = bpe.unicode_to_bytes()\n",
                    f"    hits = []\n{probe}    if hits != [2]:\n        return str(hits)\n"
                    "    to_byte = bpe.unicode_to_bytes()\n")
    path = tmp_path / "alice" / course.lesson_path(1).name
    path.parent.mkdir()
    path.write_text(text, encoding="utf-8")
    limits = sandbox.Limits(time_s=TIME_S, memory_mb=4096)
    run = sandbox.run_submission(path, 1, {n: e["args"] for n, e in stored.items()},
                                 checks_folder=course.checks_dir(), limits=limits)
    first = run.outcomes["utf8_encode"]["cases"][0]
    assert first == {"error": "failing", "message": "ran out of memory (the limit is 4096 MB)"}
    assert run.outcomes["printable_bytes"] == {"error": "timed out",
                                               "message": f"timed out after {TIME_S:g} s"}
    assert run.output_bytes > 800_000 and len(run.output) <= limits.output_kb * 1024
    isolated = run.isolated
    if isolated:
        token = run.outcomes["token_to_text"]["cases"]
        assert all("output" in c for c in token), token  # all attacks but the inside write fail
        assert not outside.exists()

    # exits: sys.exit is caught per case; os._exit ends the process, and costs one exercise
    text = _replace(_solution(1), "    if code_point < 0x80:\n",
                    "    import sys\n    sys.exit(3)\n    if code_point < 0x80:\n")
    text = _replace(text, "    keep = [", "    import os\n    os._exit(0)\n    keep = [")
    path.write_text(text, encoding="utf-8")
    run = sandbox.run_submission(path, 1, {n: e["args"] for n, e in stored.items()},
                                 checks_folder=course.checks_dir(), limits=limits)
    assert run.outcomes["utf8_encode"]["cases"][0]["message"] == "called sys.exit(3)"
    assert run.outcomes["printable_bytes"]["error"] == "crashed"
    assert "exit code 0" in run.outcomes["printable_bytes"]["message"]
    assert "cases" in run.outcomes["token_to_text"]

    # top-level code other than definitions never runs, not even by importing the file
    path.write_text(f"import submitted\nopen({str(outside)!r}, 'w').write('x')\n" + _solution(1),
                    encoding="utf-8")
    run = sandbox.run_submission(path, 1, {n: e["args"] for n, e in stored.items()},
                                 checks_folder=course.checks_dir(), limits=limits)
    assert "ModuleNotFoundError" in run.outcomes["utf8_encode"]["message"]
    assert not outside.exists()
    if not isolated:
        pytest.skip("no Landlock on this kernel: reading and writing outside was not tested")


# --- a whole class ----------------------------------------------------------------------


def _notebook(export: Path, number: int, edits: list[tuple[str, str]] = (),
              solved: bool = True) -> dict:
    """A student's notebook: the release with solution cells filled in, then `edits`."""
    stem = _stem(number)
    release = json.loads((export / "release" / stem / f"{stem}.ipynb").read_text("utf-8"))
    source = json.loads((export / "source" / stem / f"{stem}.ipynb").read_text("utf-8"))
    by_id = {c["id"]: c for c in source["cells"]}
    for cell in release["cells"]:
        if solved and cell["metadata"].get("nbgrader", {}).get("solution"):
            cell["source"] = notebooks.to_solution("".join(by_id[cell["id"]]["source"]))
    for old, new in edits:
        cells = [c for c in release["cells"] if old in "".join(c["source"])]
        assert cells, f"{old!r} in no cell"
        cells[0]["source"] = "".join(cells[0]["source"]).replace(old, new, 1)
    return release


def _hand_in(export: Path, student: str, number: int, content: str | dict) -> Path:
    folder = export / "submitted" / student / _stem(number)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".py" if isinstance(content, str) else ".ipynb"
    path = folder / (_stem(number) + suffix)
    path.write_text(content if isinstance(content, str) else json.dumps(content),
                    encoding="utf-8")
    return path


def _cell_and_line(notebook: dict, needle: str) -> tuple[int, int]:
    for number, cell in enumerate(notebook["cells"], start=1):
        lines = "".join(cell["source"]).splitlines()
        for i, line in enumerate(lines, start=1):
            if needle in line:
                return number, i
    raise AssertionError(needle)


def test_grade_a_class(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    export = tmp_path / "course"
    assert cli.main(["teacher", "export", "1", "5", "--to", str(export), "--secret", SECRET]) == 0
    stored = teacher.load_hidden(export / "hidden_tests")
    cases = {(n, e): stored[n]["exercises"][e]["args"] for n in stored
             for e in stored[n]["exercises"]}
    points = {(n, e): stored[n]["exercises"][e]["points"] for n in stored
              for e in stored[n]["exercises"]}
    full = dict(points)
    zero = dict.fromkeys(points, 0.0)
    s1, s5 = _solution(1), _solution(5)
    lesson1 = [k for k in points if k[0] == 1]
    expected: dict[str, dict] = {}

    # ada, bo: correct (a notebook, and .py files)
    _hand_in(export, "ada", 1, _notebook(export, 1))
    _hand_in(export, "ada", 5, _notebook(export, 5))
    expected["ada"] = full
    _hand_in(export, "bo", 1, s1)
    _hand_in(export, "bo", 5, s5)
    expected["bo"] = full
    # cy: partly wrong: 4-byte code points take the 3-byte branch; a leaky mask
    _hand_in(export, "cy", 1, _replace(s1, "if code_point < 0x10000:", "if code_point < 0x110000:"))
    _hand_in(export, "cy", 5, _replace(s5, "return jnp.tril(jnp.ones((T, T), dtype=bool))",
                                       "return jnp.tril(jnp.ones((T, T), dtype=bool), 1)"))
    small = sum(args[0] < 0x10000 for args in cases[1, "utf8_encode"])
    ones = sum(args[0] == 1 for args in cases[5, "causal_mask"])
    expected["cy"] = {**full, (1, "utf8_encode"): round(2 * small / 8, 2),
                      (5, "causal_mask"): round(ones / 4, 2)}
    # dee: hangs in one exercise, hands nothing in for lesson 5
    _hand_in(export, "dee", 1, _notebook(export, 1, [("    keep = [", "    while True:\n"
                                                      "        pass\n    keep = [")]))
    expected["dee"] = {**full, (1, "printable_bytes"): 0.0,
                       **{k: 0.0 for k in points if k[0] == 5}}
    # eli: crashes on some inputs (4-byte code points), in a notebook
    eli = _notebook(export, 1, [("    if code_point < 0x80:\n",
                                 "    if code_point >= 0x10000:\n        1 / 0\n"
                                 "    if code_point < 0x80:\n")])
    _hand_in(export, "eli", 1, eli)
    _hand_in(export, "eli", 5, s5)
    expected["eli"] = {**full, (1, "utf8_encode"): round(2 * small / 8, 2)}
    # fay: a malicious function: writes into the teacher's folder, reads the hidden cases
    attacks = [f"open({str(export / 'pwned.txt')!r}, 'w').write('x')",
               f"open({str(export / 'hidden_tests' / '01_cases.npz')!r}, 'rb').read()"]
    probe = "".join(f"    try:\n        {a}\n        return 'LEAKED'\n    except OSError:\n"
                    "        pass\n" for a in attacks)
    _hand_in(export, "fay", 1, _replace(s1, "    to_byte = bpe.unicode_to_bytes()\n",
                                        probe + "    to_byte = bpe.unicode_to_bytes()\n"))
    expected["fay"] = {**full, **{k: 0.0 for k in points if k[0] == 5}}
    # gus: top-level code that writes a file when the definitions load
    _hand_in(export, "gus", 1, s1 + f"\nTRAP = open({str(export / 'gus.txt')!r}, 'w').write('x')\n")
    expected["gus"] = zero
    # hal: sys.exit in one exercise, os._exit in another
    hal = _replace(s1, "    if code_point < 0x80:\n", "    import sys\n    sys.exit(1)\n"
                   "    if code_point < 0x80:\n")
    _hand_in(export, "hal", 1, _replace(hal, "    keep = [", "    import os\n    os._exit(0)\n"
                                        "    keep = ["))
    expected["hal"] = {**zero, (1, "token_to_text"): points[1, "token_to_text"]}
    # ivy: runs out of memory in one exercise (lesson 5 only)
    _hand_in(export, "ivy", 5, _replace(s5, "    q, k, v = x @ w_q, x @ w_k, x @ w_v  # (T, K)\n",
                                        "    import numpy\n    numpy.ones((60_000, 60_000))\n"
                                        "    q, k, v = x @ w_q, x @ w_k, x @ w_v  # (T, K)\n"))
    expected["ivy"] = {**full, **{k: 0.0 for k in lesson1}, (5, "self_attention"): 0.0}
    # jo: prints megabytes (still right), and prints forever in lesson 5
    _hand_in(export, "jo", 1, _replace(s1, "    if code_point < 0x80:\n",
                                       "    print('x' * 1_000_000)\n    if code_point < 0x80:\n"))
    _hand_in(export, "jo", 5, _replace(s5, "    return jnp.tril(", "    while True:\n"
                                       "        print('y' * 1000)\n    return jnp.tril("))
    expected["jo"] = {**full, (5, "causal_mask"): 0.0}
    # kim: borrowed answers: named, a forbidden shortcut, and one hidden from the reading
    kim = _replace(s1, "    keep = [", "    return bpe.bytes_to_unicode()\n    keep = [")
    kim = _replace(kim, "    if code_point < 0x80:\n", "    return chr(code_point).encode()\n"
                   "    if code_point < 0x80:\n")
    _hand_in(export, "kim", 1, kim)
    kim5 = _replace(s5, "    return jnp.tril(", "    return model.causal_mask(T)\n"
                    "    return jnp.tril(")
    kim5 = _replace(kim5, "    T_, D_ = x.shape\n", "    import inspect\n"
                    "    sneaky = dict(inspect.getmembers(model))['att' + 'end']\n"
                    "    sneaky(x, x, x, None)\n    T_, D_ = x.shape\n")
    _hand_in(export, "kim", 5, kim5)
    expected["kim"] = {**full, (1, "printable_bytes"): 0.0, (1, "utf8_encode"): 0.0,
                       (5, "causal_mask"): 0.0, (5, "multi_head_attention"): 0.0}
    # lou: hands in the untouched release notebooks
    _hand_in(export, "lou", 1, _notebook(export, 1, solved=False))
    _hand_in(export, "lou", 5, _notebook(export, 5, solved=False))
    expected["lou"] = zero
    # max: a notebook Python can't parse in lesson 5
    _hand_in(export, "max", 1, s1)
    _hand_in(export, "max", 5, _notebook(export, 5, [("def causal_mask(T: int)",
                                                      "def causal_mask(T:")]))
    expected["max"] = {**full, **{k: 0.0 for k in points if k[0] == 5}}

    start = time.perf_counter()
    code = cli.main(["teacher", "grade", str(export / "submitted"), "--time-limit", str(TIME_S),
                     "--jobs", "2"])
    seconds = time.perf_counter() - start
    assert code == 0
    out = capsys.readouterr().out
    print(f"graded a class of {len(expected)} in {seconds:.1f} s")  # the report quotes this
    graded = export / "graded"
    with (graded / "gradebook.csv").open(encoding="utf-8") as f:
        book = list(csv.reader(f))
    columns = [(int(c[:2]), c[3:]) for c in book[0][1:-1]]
    assert book[0][0] == "student" and book[0][-1] == "total"
    assert book[1] == [teacher.POINTS_POSSIBLE, *[f"{points[c]:g}" for c in columns],
                       f"{sum(points.values()):g}"]
    got = {row[0]: dict(zip(columns, map(float, row[1:-1]), strict=True)) for row in book[2:]}
    assert got == {s: {c: expected[s][c] for c in columns} for s in expected}
    for row in book[2:]:
        assert float(row[-1]) == pytest.approx(sum(expected[row[0]].values()))
    assert not (export / "pwned.txt").exists() and not (export / "gus.txt").exists()

    # the long CSV and the messages teachers and students see
    with (graded / "results.csv").open(encoding="utf-8") as f:
        rows = {(r["student"], int(r["lesson"]), r["exercise"]): r for r in csv.DictReader(f)}
    assert len(rows) == len(expected) * len(points)
    assert rows["dee", 1, "printable_bytes"]["message"] == f"timed out after {TIME_S:g} s"
    assert rows["dee", 5, "causal_mask"]["status"] == "missing"
    assert rows["jo", 5, "causal_mask"]["status"] == "timed out"
    assert rows["ivy", 5, "self_attention"]["message"].endswith("ran out of memory (the limit "
                                                                "is 4096 MB)")
    assert "uses minitf.bpe.bytes_to_unicode" in rows["kim", 1, "printable_bytes"]["message"]
    assert "uses .encode" in rows["kim", 1, "utf8_encode"]["message"]
    assert "called minitf.model.attend" in rows["kim", 5, "multi_head_attention"]["message"]
    assert rows["lou", 5, "self_attention"]["status"] == "not started"
    assert "could not be loaded: PermissionError" in rows["gus", 1, "utf8_encode"]["message"]
    assert rows["hal", 1, "printable_bytes"]["status"] == "crashed"
    assert "can't parse" in rows["max", 5, "causal_mask"]["message"]
    assert rows["cy", 1, "utf8_encode"]["status"] == "partial"
    assert rows["cy", 1, "utf8_encode"]["cases_passed"] == str(small)
    cell, line = _cell_and_line(eli, "1 / 0")
    feedback = (graded / "feedback" / "eli.md").read_text(encoding="utf-8")
    assert f"raised ZeroDivisionError: division by zero (in utf8_encode, cell {cell}, line " \
           f"{line})" in feedback
    assert "Hint: check the number of bytes" in feedback
    assert sorted(p.stem for p in (graded / "feedback").glob("*.md")) == sorted(expected)
    for name in expected:
        assert f"{name}: " in out



def test_grading_never_overwrites_a_gradebook(tmp_path: Path) -> None:
    export = tmp_path / "course"
    teacher.export([1], export, secret=SECRET)
    _hand_in(export, "ann", 1, _solution(1))
    first = teacher.grade(export / "submitted", jobs=1, progress=False)
    assert first.folder == export / "graded"
    before = (first.folder / "gradebook.csv").read_bytes()
    second = teacher.grade(export / "submitted", out=export / "graded", jobs=1, progress=False)
    assert second.folder == export / "graded-2" and (second.folder / "gradebook.csv").is_file()
    assert (first.folder / "gradebook.csv").read_bytes() == before
    assert not [p for p in export.iterdir() if p.name.startswith(".graded")]  # no temp folders
    assert cli.main(["teacher", "grade", str(export / "submitted"), "--out",
                     str(export / "README.md" / "x")]) == 2  # a file in the way: one line


# --- nbgrader and Gradescope -------------------------------------------------------------


def test_nbgrader_accepts_the_export(tmp_path: Path) -> None:
    """nbgrader releases no solution and no hidden test, and autograding gives the hidden
    cases' partial credit."""
    pytest.importorskip("nbgrader")
    nbgrader = [sys.executable, "-m", "nbgrader"]
    export = tmp_path / "course"
    teacher.export([1], export, secret=SECRET)
    stem = _stem(1)
    root = [f"--CourseDirectory.root={export}", f"--db=sqlite:///{export}/gradebook.db"]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    run = subprocess.run([*nbgrader, "generate_assignment", stem, "--create", *root,
                          "--CourseDirectory.release_directory=nbgrader_release"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    released = (export / "nbgrader_release" / stem / f"{stem}.ipynb").read_text("utf-8")
    assert "0b11000000" not in released  # a line of utf8_encode's solution
    assert "grade_here" not in released and notebooks.BEGIN_HIDDEN not in released
    assert json.loads(released)["cells"]  # and it is a notebook
    # a student who gets 4-byte code points wrong: partial credit on utf8_encode
    notebook = json.loads(released)
    source = {c["id"]: c for c in json.loads(
        (export / "source" / stem / f"{stem}.ipynb").read_text("utf-8"))["cells"]}
    for cell in notebook["cells"]:
        if cell["metadata"].get("nbgrader", {}).get("solution"):
            text = notebooks.to_solution("".join(source[cell["id"]]["source"]))
            cell["source"] = text.replace("if code_point < 0x10000:", "if code_point < 0x110000:")
    folder = export / "submitted" / "cy" / stem
    folder.mkdir(parents=True)
    (folder / f"{stem}.ipynb").write_text(json.dumps(notebook), encoding="utf-8")
    run = subprocess.run([*nbgrader, "autograde", stem, "--create", *root], capture_output=True,
                         text=True, env={**env, "MINITF_QUICK": "1"}, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    from nbgrader.api import Gradebook

    args = teacher.load_hidden(export / "hidden_tests")[1]["exercises"]["utf8_encode"]["args"]
    small = sum(a[0] < 0x10000 for a in args)
    with Gradebook(f"sqlite:///{export}/gradebook.db") as gradebook:
        submission = gradebook.find_submission(stem, "cy")
        scores = {g.name: g.score for nb in submission.notebooks for g in nb.grades}
    assert scores == {"graded-utf8_encode": pytest.approx(2 * small / 8),
                      "graded-printable_bytes": 1.0, "graded-token_to_text": 2.0}


def test_gradescope_autograder_runs(tmp_path: Path) -> None:
    export = tmp_path / "course"
    teacher.export([1], export, secret=SECRET, gradescope=True)
    zipped = export / "gradescope" / f"{_stem(1)}.zip"
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    with zipfile.ZipFile(zipped) as z:
        names = set(z.namelist())
        assert {"setup.sh", "run_autograder", "hidden/01_cases.npz",
                "minitf/pyproject.toml", "minitf/minitf/course/sandbox.py"} <= names
        z.extractall(root / "source")
    shutil.copy(root / "source" / "run_autograder", root / "run_autograder")
    text = _replace(_solution(1), "if code_point < 0x10000:", "if code_point < 0x110000:")
    (root / "submission" / "my_work.py").write_text(text, encoding="utf-8")
    # the bundled minitf, not this checkout, grades it
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "MINITF_PYTHON": sys.executable,
           "PYTHONPATH": str(root / "source" / "minitf")}
    run = subprocess.run(["bash", str(root / "run_autograder")], capture_output=True, text=True,
                         env=env, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    results = json.loads((root / "results" / "results.json").read_text(encoding="utf-8"))
    args = teacher.load_hidden(export / "hidden_tests")[1]["exercises"]["utf8_encode"]["args"]
    small = sum(a[0] < 0x10000 for a in args)
    assert [t["name"] for t in results["tests"]] == ["utf8_encode", "printable_bytes",
                                                     "token_to_text"]
    for test in results["tests"]:
        assert set(test) >= {"name", "score", "max_score", "output"}
    assert results["tests"][0]["score"] == round(2 * small / 8, 2)
    assert results["score"] == pytest.approx(round(2 * small / 8, 2) + 3)
    assert "Hint:" in results["tests"][0]["output"]
    with zipfile.ZipFile(zipped) as z:  # Gradescope runs both scripts: executable
        assert all((z.getinfo(n).external_attr >> 16) & 0o111 for n in ("setup.sh",
                                                                         "run_autograder"))


def test_grade_needs_hidden_cases(tmp_path: Path) -> None:
    (tmp_path / "submitted" / "ann").mkdir(parents=True)
    with pytest.raises(ValueError, match="no hidden cases"):
        teacher.grade(tmp_path / "submitted")
