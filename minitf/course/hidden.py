"""Hidden test cases: grading each exercise on inputs the students have never seen.

The public checks (`check_<exercise>(module)` in `lessons/checks/NN_checks.py`) are for
learning: every student has them. For a grade, each check also declares how its exercise
is graded, in a few lines right above it:

    @graded(points=2, hint="check the number of bytes and the prefix bits",
            cases=lambda rng: [(int(c),) for c in rng.integers(0, 0xD800, 8)],
            borrowed=("minitf.bpe.utf8",), forbidden=("encode",))
    def check_utf8_encode(module) -> None:
        ...

- `points`: what the exercise is worth; each hidden case carries an equal share of them
  (partial credit).
- `cases(rng)`: a list of argument tuples, fresh inputs drawn from `rng` (a
  `numpy.random.Generator`). Keep them small (a grade runs them for every student), plain
  data and arrays (see `minitf.course.datafile`); jax arrays stay jax arrays.
- `hint`: what to look at when a case fails. Never the expected value.
- `compare(got, want)`: None when `got` is right, else what is wrong with it (e.g.
  "has shape (3,) where (3, 4) is expected"). Default `equal`; `close(atol=...)` for
  floats; write your own for answers that are right in more than one way.
- `reference`: what computes the expected outputs; default: the lesson's own solution of
  the exercise (the function of that name in the solution version of the lesson).
- `prepare(*args)`: turns stored arguments into the call's arguments, for inputs that are
  not plain data (e.g. train a `Tokenizer` from a stored text). Runs for the reference at
  export and for the student at grading.
- `borrowed`: dotted names of functions that *are* the answer: minitf's (e.g.
  `"minitf.model.causal_mask"` for `causal_mask`) or a library's (`"jax.grad"` for a
  backward pass by hand); `forbidden`: names or attributes the exercise rules out (e.g.
  `"encode"`). See `minitf.course.borrowed`.
- `functions`: for an exercise of several functions (lesson 2's `encode` and `decode`),
  their names. Each case then starts with the name of the function it calls:
  `("decode", ids, merges)`; the reference is the solution's function of that name.
- `run(function, *args)`: how a case calls the function, when not plainly
  `function(*args)`: lesson 7 runs `train_step` under `jax.jit`, as the lesson does (op by
  op, a model's gradient takes seconds to compile).

`minitf teacher export --secret-file KEY` draws every exercise's cases from a generator
keyed by HMAC-SHA256(secret, lesson and exercise name), runs the reference on them and
stores inputs and expected outputs in the teacher's folder only (`hidden_tests/`). Without
the secret nobody can draw the same cases, even with all of minitf's code in hand.
`minitf teacher grade` runs each submission on the stored inputs in its own process
(`minitf.course.sandbox`) and compares here, in the grader, with `score_exercise`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from minitf.course import datafile

MIN_SECRET_CHARS = 16
CASES_VERSION = 1

# --- the declaration -------------------------------------------------------------------


@dataclass(frozen=True)
class Grading:
    """How an exercise is graded on hidden cases (see the module docstring)."""

    points: float
    cases: Callable[[np.random.Generator], Sequence[tuple]]
    hint: str
    compare: Callable[[Any, Any], str | None] = field(default=None)  # None: `equal`
    reference: Callable | None = None
    prepare: Callable[..., tuple] | None = None
    borrowed: tuple[str, ...] = ()
    forbidden: tuple[str, ...] = ()
    functions: tuple[str, ...] = ()  # several functions: each case starts with one's name
    run: Callable[..., Any] | None = None  # run(function, *args); None: function(*args)

    def __post_init__(self) -> None:
        if not self.points > 0:
            raise ValueError(f"an exercise's points must be positive; got {self.points}")
        if self.functions and self.reference is not None:
            raise ValueError("an exercise of several functions takes the solution's as the "
                             "reference; leave out reference=")
        if self.compare is None:
            object.__setattr__(self, "compare", equal)

    def names(self, exercise: str) -> tuple[str, ...]:
        """The learner's functions that exercise `exercise` is made of."""
        return self.functions or (exercise,)

    def split_case(self, exercise: str, args: tuple) -> tuple[str, tuple]:
        """(the function a case calls, the call's arguments) for stored arguments `args`."""
        function, args = (args[0], tuple(args[1:])) if self.functions else (exercise, args)
        if function not in self.names(exercise):
            raise ValueError(f"{exercise}: a case calls {function!r}, which is not one of its "
                             f"functions {self.names(exercise)}")
        return function, tuple(self.prepare(*args)) if self.prepare else tuple(args)

    def invoke(self, function: Callable, args: tuple) -> Any:
        """Call `function` on a case's arguments (see `run`). Learner code may broadcast as
        numpy does (`x * scale`), as in the public checks, even where jax is set to raise."""
        import jax

        with jax.numpy_rank_promotion("allow"):
            return self.run(function, *args) if self.run else function(*args)


def graded(**fields: Any) -> Callable[[Callable], Callable]:
    """Decorate a public check with its exercise's hidden grading (`Grading`'s fields)."""
    grading = Grading(**fields)

    def attach(check: Callable) -> Callable:
        check.grading = grading
        return check

    return attach


def grading_of(check: Callable) -> Grading | None:
    """The hidden grading a check declares, or None."""
    return getattr(check, "grading", None)


def borrowed_problem(body: list, exercise: str, grading: Grading | None) -> str | None:
    """Why a submission (its top-level statements `body`) may not be graded on `exercise`:
    one of its functions uses a borrowed answer or a forbidden shortcut; else None."""
    from minitf.course.borrowed import uses_borrowed

    if grading is None:
        return None
    for function in grading.names(exercise):
        problem = uses_borrowed(body, function, grading.borrowed, grading.forbidden)
        if problem:
            return problem
    return None


# --- comparing an answer with the reference's ------------------------------------------


def equal(got: Any, want: Any) -> str | None:
    """Exactly the reference's value (lists and tuples alike, numbers by value)."""
    return _difference(got, want, None, None)


def close(atol: float = 1e-5, rtol: float = 1e-5) -> Callable[[Any, Any], str | None]:
    """Floats within `atol + rtol * |want|` of the reference's (shapes and types exact)."""

    def compare(got: Any, want: Any) -> str | None:
        return _difference(got, want, atol, rtol)

    return compare


def _kind(x: Any) -> str:
    if isinstance(x, np.ndarray):
        return f"a {x.dtype} array"
    return {bool: "a bool", int: "an int", float: "a float", str: "a string", bytes: "bytes",
            list: "a list", tuple: "a tuple", dict: "a dict", set: "a set",
            type(None): "None"}.get(type(x), f"a {type(x).__name__}")  # fmt: skip


def _dtype_family(a: np.ndarray) -> str:
    return {"b": "bool", "i": "integer", "u": "integer", "f": "float", "c": "complex"}.get(
        a.dtype.kind, str(a.dtype))


def _difference(got: Any, want: Any, atol: float | None, rtol: float | None) -> str | None:
    """None if `got` matches `want`, else what differs (saying nothing of want's values)."""
    if isinstance(want, np.ndarray) or isinstance(got, np.ndarray):
        if isinstance(want, np.ndarray) and isinstance(got, bool | int | float | list | tuple):
            got = np.asarray(got)
        if not isinstance(got, np.ndarray) or not isinstance(want, np.ndarray):
            return f"is {_kind(got)} where {_kind(want)} is expected"
        if got.shape != want.shape:
            return f"has shape {got.shape} where {want.shape} is expected"
        if _dtype_family(got) != _dtype_family(want) and "bool" in (_dtype_family(got),
                                                                     _dtype_family(want)):
            return f"has {_dtype_family(got)} entries where {_dtype_family(want)} ones are expected"
        if atol is None or want.dtype.kind not in "fc":
            if want.dtype.kind in "iub" and got.dtype.kind == "f" and atol is None:
                return f"has float entries where {_dtype_family(want)} ones are expected"
            same = np.array_equal(got, want)
        else:
            same = got.dtype.kind in "biufc" and bool(
                np.allclose(got, want, atol=atol, rtol=rtol, equal_nan=True))
        return None if same else "has the wrong values"
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return f"is {_kind(got)} where a dict is expected"
        if set(got) != set(want):
            return "has the wrong keys" if len(got) == len(want) else (
                f"has {len(got)} entries where {len(want)} are expected")
        for key in want:
            problem = _difference(got[key], want[key], atol, rtol)
            if problem:
                return f"is wrong at key {key!r}: it {problem}"
        return None
    if isinstance(want, list | tuple):
        if not isinstance(got, list | tuple):
            return f"is {_kind(got)} where {_kind(want)} is expected"
        if len(got) != len(want):
            return f"has {len(got)} items where {len(want)} are expected"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            problem = _difference(g, w, atol, rtol)
            if problem:
                return f"is wrong at item {i}: it {problem}"
        return None
    if isinstance(want, bool | int | float) and not isinstance(want, bool):
        if isinstance(got, np.ndarray) and got.shape == ():
            got = got.item()
        if isinstance(got, bool) or not isinstance(got, int | float):
            return f"is {_kind(got)} where a number is expected"
        if atol is None or isinstance(want, int):
            return None if got == want else "is the wrong number"
        return None if abs(got - want) <= atol + rtol * abs(want) else "is the wrong number"
    if type(got) is not type(want):
        return f"is {_kind(got)} where {_kind(want)} is expected"
    return None if got == want else "is not the right value"


# --- the secret and the cases ----------------------------------------------------------


def read_secret(secret: str | None, secret_file: Path | None) -> bytes:
    """The teacher's secret: `secret` itself, else the key in `secret_file`, which is made
    (32 random bytes, hex, readable by the owner only) when it doesn't exist yet."""
    if secret is not None:
        if len(secret) < MIN_SECRET_CHARS:
            raise ValueError(
                f"--secret has {len(secret)} characters; a guessable secret would let students "
                f"draw the hidden cases themselves: use at least {MIN_SECRET_CHARS} random "
                "characters, or --secret-file KEY (minitf makes a random key there)")
        return secret.encode("utf-8")
    if secret_file is None:
        raise ValueError("give --secret-file KEY (made if missing) or --secret TEXT")
    path = Path(secret_file)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "x", encoding="utf-8") as f:  # "x": never replace an existing key
            path.chmod(0o600)
            f.write(secrets.token_hex(32) + "\n")
        print(f"made a new secret key: {path} (keep it private; it draws the hidden cases)")
    key = path.read_text(encoding="utf-8").strip()
    if len(key) < MIN_SECRET_CHARS:
        raise ValueError(f"the key in {path} has only {len(key)} characters; use at least "
                         f"{MIN_SECRET_CHARS} (delete it and minitf makes a random one)")
    return key.encode("utf-8")


def case_rng(secret: bytes, lesson: int, exercise: str) -> np.random.Generator:
    """The generator of an exercise's hidden cases: seeded by HMAC-SHA256 of the secret
    and the exercise's name, so it can't be reproduced without the secret."""
    message = f"minitf hidden cases v{CASES_VERSION}|lesson {lesson:02d}|{exercise}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return np.random.default_rng(int.from_bytes(digest, "big"))


def make_cases(lesson: int, secret: bytes, checks: list[tuple[str, Callable]],
               solution: object) -> dict:
    """Draw every graded exercise's cases and run the reference on them.

    -> {"lesson": N, "version": 1, "exercises": {name: {"points", "args", "expected"}}}
    """
    exercises = {}
    for name, check in checks:
        grading = grading_of(check)
        if grading is None:
            continue
        args_list = [tuple(a) for a in grading.cases(case_rng(secret, lesson, name))]
        if not args_list:
            raise ValueError(f"lesson {lesson} {name}: cases(rng) returned no cases")
        expected = []
        for args in args_list:
            function, call = grading.split_case(name, args)
            reference = grading.reference or getattr(solution, function)
            try:
                expected.append(grading.invoke(reference, call))
            except Exception as err:
                raise ValueError(
                    f"lesson {lesson} {name}: the reference raised {type(err).__name__}: "
                    f"{err} on a hidden case; make cases(rng) draw inputs the exercise "
                    "accepts") from err
        # through the codec, so expected values are plain numpy from here on
        expected = datafile.loads(datafile.dumps(expected))
        exercises[name] = {"points": float(grading.points), "args": args_list,
                           "expected": expected}
    return {"lesson": lesson, "version": CASES_VERSION, "exercises": exercises}


def cases_path(folder: Path, lesson: int) -> Path:
    """Where a lesson's hidden cases live in the teacher's `hidden_tests/` folder."""
    return Path(folder) / f"{lesson:02d}_cases.npz"


# --- running a learner's function on the cases ----------------------------------------


def _call_error(err: BaseException, memory_mb: int | None, files: set[str]) -> dict:
    from minitf.course.check import location

    if isinstance(err, NotImplementedError):
        return {"error": "not started", "message": "not started (TODO)"}
    if isinstance(err, SystemExit):
        return {"error": "failing", "message": f"called sys.exit({err.code!r})"}
    if isinstance(err, MemoryError):
        limit = f" (the limit is {memory_mb} MB)" if memory_mb else ""
        return {"error": "failing", "message": f"ran out of memory{limit}"}
    return {"error": "failing",
            "message": f"raised {type(err).__name__}: {str(err)[:300]}{location(err, files)}"}


def _plain_call(function: Callable, args: tuple) -> Any:
    return function(*args)


def run_cases(module: Any, name: str, grading: Grading | None, cases: list[tuple], *,
              memory_mb: int | None = None) -> dict:
    """Call `module`'s function `name` on every case, with minitf's answers trapped.

    -> {"cases": [{"output": value} or {"error": status, "message": ...}, ...]}, or
    {"error": ..., "message": ...} for the exercise as a whole (missing, borrowed).
    """
    from minitf.course.borrowed import traps, whose_answer

    namespace = module if isinstance(module, dict) else vars(module)
    for function in grading.names(name) if grading else (name,):
        if not callable(namespace.get(function)):
            return {"error": "missing", "message": f"your file has no function named {function}"}
    files = namespace.get("__learner_files__")
    calls = [grading.split_case(name, args) if grading else (name, tuple(args)) for args in cases]
    outcomes = []
    with traps(grading.borrowed if grading else (), namespace) as called:
        for function, args in calls:
            try:  # looked up here: a borrowed function imported under this name is trapped
                output = (grading.invoke if grading else _plain_call)(namespace[function], args)
            except BaseException as err:  # noqa: BLE001 - anything the submission does
                if called:
                    break
                outcomes.append(_call_error(err, memory_mb, files))
                continue
            if called:  # it caught the BorrowedAnswer and went on
                break
            try:
                datafile.encode(output)
            except TypeError as err:
                outcomes.append({"error": "failing", "message": f"returned {err}, which the "
                                 "grader can't read (return arrays, numbers, strings, lists, "
                                 "tuples or dicts)"})
                continue
            outcomes.append({"output": output})
    if called:
        return {"error": "borrowed", "message": f"{function} called {called[0]}, "
                f"{whose_answer(called[0])}: write it yourself (0 points)"}
    return {"cases": outcomes}


def grade_here(lesson: int, exercise: str, namespace: dict, blob: str) -> float:
    """The hidden tests of an nbgrader test cell (see `minitf teacher export`): run the
    notebook's own function on the cases in `blob`, print how it did, and return the
    points earned, which nbgrader reads as the cell's partial credit.

    Runs in the notebook's kernel, so nbgrader's own timeout is the only time limit; the
    borrowed-answer guards apply as in `minitf teacher grade`.
    """
    import base64
    import contextlib
    import io
    import warnings

    from minitf.course.check import definitions_only, load_checks

    stored = datafile.loads(base64.b64decode(blob), rebuild=True)
    grading = grading_of(dict(load_checks(lesson)).get(exercise, None))
    body = []
    for source in namespace.get("In", []):  # IPython's history of executed cells
        try:
            body += definitions_only(source).body
        except ValueError:
            continue
    problem = borrowed_problem(body, exercise, grading)
    if problem:
        outcome = {"error": "borrowed", "message": problem}
    else:  # nbgrader scores a test cell that writes to stderr as 0: keep the call quiet
        with (contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()),
              warnings.catch_warnings()):
            warnings.simplefilter("ignore")
            outcome = run_cases(namespace, exercise, grading, stored["args"])
        if "cases" in outcome:
            outcome["cases"] = datafile.loads(datafile.dumps(outcome["cases"]))
    result = score_exercise(lesson, exercise, stored, grading, outcome)
    print(f"{exercise}: {result.score:g} of {result.points:g} points ({result.message})")
    return result.score


# --- scoring ---------------------------------------------------------------------------


@dataclass
class CaseResult:
    passed: bool
    problem: str = ""  # what went wrong (empty when passed)


@dataclass
class ExerciseGrade:
    lesson: int
    exercise: str
    points: float
    score: float
    status: str  # passing, partial, failing, not started, borrowed, timed out, crashed, missing
    message: str = ""  # one line for the teacher's CSV
    cases: list[CaseResult] = field(default_factory=list)
    hint: str = ""


def _well_formed(outcome: Any, n_cases: int) -> bool:
    """True when an outcome has the shape `score_exercise` reads: a submission runs in the
    process that writes it, so it may have written anything there."""

    def failure(d: Any) -> bool:
        return isinstance(d.get("error"), str) and isinstance(d.get("message"), str)

    if not isinstance(outcome, dict):
        return False
    if "cases" not in outcome:
        return failure(outcome)
    cases = outcome["cases"]
    return isinstance(cases, list | tuple) and len(cases) == n_cases and all(
        isinstance(c, dict) and (failure(c) if "error" in c else "output" in c) for c in cases)


def score_exercise(lesson: int, name: str, stored: dict, grading: Grading | None,
                   outcome: dict) -> ExerciseGrade:
    """Grade one exercise from what its run produced (`minitf.course.sandbox`).

    `outcome` is {"error": status, "message": ...} when the exercise as a whole failed
    (not started, timed out, crashed, a borrowed answer, ...), else {"cases": [...]} with
    per case {"output": value} or {"error": ..., "message": ...}.
    """
    points, expected = stored["points"], stored["expected"]
    hint = grading.hint if grading else ""
    if not _well_formed(outcome, len(expected)):  # the submission wrote its results file
        outcome = {"error": "crashed", "message": "its results could not be read"}
    if "cases" not in outcome:
        return ExerciseGrade(lesson, name, points, 0.0, outcome["error"], outcome["message"],
                             hint=hint)
    cases = outcome["cases"]
    if cases and all(c.get("error") == "not started" for c in cases):
        return ExerciseGrade(lesson, name, points, 0.0, "not started", "not started (TODO)")
    compare = grading.compare if grading else equal
    results = []
    for i, (case, want) in enumerate(zip(cases, expected, strict=True)):
        if "error" in case:
            results.append(CaseResult(False, case["message"]))
            continue
        try:
            problem = compare(case["output"], want)
        except Exception as err:  # noqa: BLE001 - an odd answer must not stop the grading
            problem = f"could not be compared ({type(err).__name__}: {err})"
        results.append(CaseResult(problem is None, "" if problem is None else
                                  f"case {i + 1}: the result {problem}"))
    passed = sum(r.passed for r in results)
    score = round(points * passed / len(results), 2)
    status = "passing" if passed == len(results) else "partial" if passed else "failing"
    first = next((r.problem for r in results if not r.passed), "")
    message = f"{passed}/{len(results)} hidden cases right" + (f"; {first}" if first else "")
    return ExerciseGrade(lesson, name, points, score, status, message, results, hint)
