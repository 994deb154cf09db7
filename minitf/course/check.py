"""Checking a learner's exercises: load their definitions, run the lesson's checks, report.

A lesson's checks live in `lessons/checks/NN_checks.py` as functions
`check_<exercise>(module)`, in the order the exercises appear. A check passes by
returning, fails by raising AssertionError with a hint (never the expected value), and
the learner has not started when their function raises NotImplementedError.

Each check also declares, right above it, how its exercise is graded for a class: points
and a generator of hidden cases, compared with the lesson's own solution (see
`minitf.course.hidden` for the fields):

    @graded(points=1, cases=lambda rng: [(int(T),) for T in rng.integers(1, 16, size=4)],
            hint="True on and below the diagonal", borrowed=("minitf.model.causal_mask",))
    def check_causal_mask(module) -> None:
        ...

A new exercise needs both: `tests/test_grading.py` fails for an exercise without
`@graded`, and checks that the solution earns every point.

The learner's file (`.py` or `.ipynb`) is not run as a whole: that would train models and
draw figures. It is parsed with `ast`, and only the top-level imports, function and class
definitions and constant assignments (an UPPER_CASE name, or a literal value) are
executed, in quick mode; a notebook cell by cell, so errors name "cell 7, line 3". So
exercises must be top-level functions that take what they need as arguments. An exercise
whose function uses minitf's own answer fails (`minitf.course.borrowed`).

Here learner code runs in this process, as it does when they run their own notebook;
grading a class runs each submission in a sandbox (`minitf.course.sandbox`).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import sys
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from minitf import course
from minitf.course.hidden import borrowed_problem, grading_of
from minitf.course.notebooks import code_cells, read_source

NOT_STARTED, FAILING, PASSING = "not started", "failing", "passing"


@dataclass
class Result:
    exercise: str  # the exercise's name (the check function without `check_`)
    status: str  # NOT_STARTED, FAILING or PASSING
    message: str = ""  # the hint for a failing exercise


# --- loading the learner's definitions -------------------------------------------------


def _is_constant(node: ast.stmt) -> bool:
    """An assignment to UPPER_CASE names, or of a literal value: cheap and safe to run."""
    if isinstance(node, ast.Assign):
        targets, value = node.targets, node.value
    elif isinstance(node, ast.AnnAssign) and node.value is not None:
        targets, value = [node.target], node.value
    else:
        return False
    if all(isinstance(t, ast.Name) and t.id.isupper() for t in targets):
        return True
    try:
        ast.literal_eval(value)
    except ValueError:
        return False
    return True


def _is_definition(node: ast.stmt) -> bool:
    if isinstance(node, ast.Import | ast.ImportFrom | ast.FunctionDef | ast.AsyncFunctionDef):
        return True
    if isinstance(node, ast.ClassDef):
        return True
    if isinstance(node, ast.Try):  # `try: import x / except ImportError: ...`
        return all(isinstance(n, ast.Import | ast.ImportFrom) for n in node.body)
    return _is_constant(node)


def definitions_only(source: str, filename: str = "<lesson>") -> ast.Module:
    """The top-level definitions of a source file, as a module ready to compile."""
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as err:
        raise ValueError(
            f"{filename}, line {err.lineno}: Python can't parse it ({err.msg})"
        ) from None
    tree.body = [node for node in tree.body if _is_definition(node)]
    return tree


def definition_parts(path: Path, name: str | None = None) -> list[tuple[str, ast.Module]]:
    """A learner's file as (filename, definitions) parts, ready to compile: one part per
    code cell of a notebook, named "cell N" (cells counted from 1, markdown included) so
    that errors point at a cell and a line in it; one part for a `.py` file, named `name`
    (default: the file's name)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if path.suffix != ".ipynb":
        filename = name or path.name
        return [(filename, definitions_only(read_source(path), filename))]
    try:
        notebook = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid notebook JSON ({err})") from None
    return [(f"cell {n}", definitions_only(code, f"cell {n}"))
            for n, code in code_cells(notebook)]


def definitions_body(path: Path) -> list[ast.stmt]:
    """Every top-level definition of a learner's file, in order (for reading, not running)."""
    return [node for _, tree in definition_parts(path) for node in tree.body]


def load_definitions(path: Path, name: str | None = None) -> types.ModuleType:
    """Execute the definitions of a learner's `.py` or `.ipynb` file; return them as a module.

    Its `__learner_files__` lists the filenames its code was compiled under (see
    `definition_parts`), which is how `location` finds the learner's frames.
    """
    path = Path(path)
    parts = definition_parts(path, name)
    name = f"minitf_learner_{abs(hash(str(path.resolve())))}"
    module = types.ModuleType(name)
    module.__file__ = str(path)
    module.__learner_files__ = {filename for filename, _ in parts}
    previous = os.environ.get(course.QUICK_ENV)
    os.environ[course.QUICK_ENV] = "1"
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    try:
        for filename, tree in parts:
            exec(compile(tree, filename, "exec"), module.__dict__)  # noqa: S102 - learner code
    finally:
        if previous is None:
            os.environ.pop(course.QUICK_ENV, None)
        else:
            os.environ[course.QUICK_ENV] = previous
    return module


# --- the checks ------------------------------------------------------------------------


def load_checks(number: int, folder: Path | None = None) -> list[tuple[str, Callable]]:
    """(exercise name, check function) pairs of lesson `number`, in the file's order."""
    folder = Path(folder) if folder is not None else course.checks_dir()
    path = folder / f"{number:02d}_checks.py"
    if not path.is_file():
        raise FileNotFoundError(f"lesson {number} has no checks file ({path})")
    spec = importlib.util.spec_from_file_location(f"minitf_checks_{number:02d}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [
        (name.removeprefix("check_"), fn)
        for name, fn in vars(module).items()
        if name.startswith("check_") and callable(fn)
    ]


def run_check(name: str, check: Callable, module: object) -> Result:
    """Run one check; turn its outcome into a Result.

    Learner code may broadcast as numpy does (`x @ w + b`), even inside a test suite that
    makes jax raise on implicit rank promotion.
    """
    import jax  # only when checking: the CLI's other commands start faster without it

    try:
        with jax.numpy_rank_promotion("allow"):
            check(module)
    except NotImplementedError:
        return Result(name, NOT_STARTED)
    except AssertionError as err:
        return Result(name, FAILING, str(err) or "a check failed (no hint given)")
    except AttributeError as err:
        return Result(name, FAILING, f"missing a definition: {err}")
    except Exception as err:  # noqa: BLE001 - any crash in learner code is a failing exercise
        where = location(err, getattr(module, "__learner_files__", None))
        return Result(name, FAILING, f"your code raised {type(err).__name__}: {err}{where}")
    return Result(name, PASSING)


def location(err: BaseException, learner_files: set[str] | None = None) -> str:
    """' (in FUNCTION, cell 7, line 3)' or ' (in FUNCTION, line 48 of NAME.py)': the
    deepest traceback frame in the learner's code; '' when there is none."""
    for frame in reversed(traceback.extract_tb(err.__traceback__)):
        if learner_files is not None:
            mine = frame.filename in learner_files
        else:  # a notebook's live namespace: anything outside minitf and the libraries
            mine = ("site-packages" not in frame.filename and "_checks.py" not in
                    frame.filename and Path(frame.filename).parent.name not in ("minitf",
                                                                                 "course"))
        if mine:
            name = "" if frame.name == "<module>" else f"in {frame.name}, "
            if frame.filename.startswith("cell "):
                return f" ({name}{frame.filename}, line {frame.lineno})"
            return f" ({name}line {frame.lineno} of {Path(frame.filename).name})"
    return ""


def check_file(number: int, path: Path, checks_folder: Path | None = None) -> list[Result]:
    """Load a learner's file and run lesson `number`'s checks; a file that fails to load
    makes every exercise fail with the reason. An exercise whose function uses minitf's
    own answer (see `minitf.course.borrowed`) fails without running its check."""
    checks = load_checks(number, checks_folder)
    try:
        module = load_definitions(path)
    except (ValueError, FileNotFoundError):
        raise
    except Exception as err:  # noqa: BLE001 - e.g. an ImportError in the learner's imports
        msg = f"your file could not be loaded: {type(err).__name__}: {err}"
        return [Result(name, FAILING, msg) for name, _ in checks]
    body = definitions_body(path)
    results = []
    for name, fn in checks:
        problem = borrowed_problem(body, name, grading_of(fn))
        results.append(Result(name, FAILING, problem) if problem else run_check(name, fn, module))
    return results


def check_here(number: int, namespace: dict, exercise: str | None = None) -> bool:
    """Check exercises from inside a running lesson or notebook: `check_here(1, globals())`.

    Prints the report (of one exercise when `exercise` is given); returns True if all pass.
    """
    module = types.SimpleNamespace(**namespace)
    checks = load_checks(number)
    if exercise is not None:
        checks = [(n, fn) for n, fn in checks if n == exercise]
        if not checks:
            raise ValueError(f"lesson {number} has no exercise named {exercise!r}")
    results = [run_check(name, fn, module) for name, fn in checks]
    print(format_report(results))
    return all(r.status == PASSING for r in results)


def format_report(results: list[Result]) -> str:
    """One line per exercise, then a summary line."""
    marks = {PASSING: "[pass]", FAILING: "[FAIL]", NOT_STARTED: "[todo]"}
    lines = []
    for r in results:
        lines.append(f"{marks[r.status]} {r.exercise}: {r.status}")
        if r.message:
            lines.extend(f"       {ln}" for ln in r.message.splitlines())
    done = sum(r.status == PASSING for r in results)
    lines.append(f"{done}/{len(results)} exercises passing")
    return "\n".join(lines)


def default_file(number: int, folder: Path | None = None) -> Path:
    """The learner's copy of lesson `number` in `folder` (the cwd): `.py`, else `.ipynb`."""
    folder = Path(folder) if folder is not None else Path.cwd()
    stem = course.lesson_path(number).stem
    for suffix in (".py", ".ipynb"):
        if (folder / (stem + suffix)).is_file():
            return folder / (stem + suffix)
    raise FileNotFoundError(
        f"no {stem}.py or {stem}.ipynb in {folder}; write one with "
        f"`minitf lesson {number}` or pass the file: `minitf check {number} FILE`"
    )
