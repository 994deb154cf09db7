"""No borrowed answers: an exercise answered by calling minitf's own solution scores 0.

An exercise's grading (`minitf.course.hidden.Grading`) names the functions that *are*
its answer (`borrowed`): minitf's own (e.g. `"minitf.bpe.bytes_to_unicode"` for
`printable_bytes`), or a library's that does the exercise's work for it (`"jax.grad"`
where the exercise asks for a backward pass by hand). It also names the shortcuts the
exercise rules out (`forbidden`, e.g. `"encode"` for `utf8_encode`). Two guards use them:

- Before anything runs, `uses_borrowed` reads the submission's source: the exercise's
  function, the top-level functions, classes and variables it reaches, and the imports
  they rely on. It reports a borrowed function used by name (imported from minitf or
  from where it lives, or as an attribute `.bytes_to_unicode` of anything; the
  exercise's own name imported counts too), a forbidden name or attribute, and the
  tools that hide what a call is (`getattr`, `eval`, `__import__`, ...), which graded
  functions may not use. (A forbidden *name* also matches a local variable of that
  name, so forbid only names nobody would give a variable; a borrowed function's name
  matches only as an attribute or an import.)
- While the function runs, `traps` replaces each borrowed function, wherever a loaded
  module or the submission holds it, with one that raises `BorrowedAnswer` (a
  BaseException, so `except Exception` can't swallow it) and records the call.

Left out: copying the reference's *code* (it is public in an open-source course; the
hidden cases make hard-coded answers fail, not copied ones). A determined student can
still hide a call in ways no reading of the source sees; the two guards together make it
deliberate work rather than an accident.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import sys
from collections.abc import Iterator

# ways to reach a function without naming it: not allowed in graded functions
HIDDEN_CALLS = ("eval", "exec", "compile", "__import__", "getattr", "globals", "vars",
                "importlib", "__dict__", "__getattribute__", "__builtins__", "attrgetter",
                "methodcaller")  # fmt: skip


class BorrowedAnswer(BaseException):
    """Raised by a borrowed minitf function while a student's exercise runs."""


def last_name(path: str) -> str:
    return path.rsplit(".", 1)[-1]


# --- reading the source ----------------------------------------------------------------


def _imports(nodes: list[ast.stmt]) -> tuple[dict[str, str], list[str]]:
    """{local name: dotted module or object} and the modules star-imported, for `nodes`."""
    names, stars = {}, []
    for node in nodes:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Import):
                for alias in sub.names:
                    if alias.asname:
                        names[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        names[top] = top
            elif isinstance(sub, ast.ImportFrom) and sub.module and not sub.level:
                for alias in sub.names:
                    if alias.name == "*":
                        stars.append(sub.module)
                    else:
                        names[alias.asname or alias.name] = f"{sub.module}.{alias.name}"
    return names, stars


def _top_level(body: list[ast.stmt]) -> dict[str, list[ast.stmt]]:
    """{name: the top-level statements that bind it} (defs, classes, assignments)."""
    bound: dict[str, list[ast.stmt]] = {}
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.setdefault(node.name, []).append(node)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Name):
                        bound.setdefault(sub.id, []).append(node)
    return bound


def reached(body: list[ast.stmt], function: str) -> list[ast.stmt]:
    """The top-level statements that `function` reaches by name, itself first."""
    bound = _top_level(body)
    todo, seen, out = [function], set(), []
    while todo:
        name = todo.pop()
        if name in seen or name not in bound:
            continue
        seen.add(name)
        for node in bound[name]:
            out.append(node)
            todo.extend(sub.id for sub in ast.walk(node) if isinstance(sub, ast.Name))
    return out


def _dotted(node: ast.expr, imports: dict[str, str]) -> str | None:
    """`a.b.c` with the import of `a` substituted, or None when the base isn't a name."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    base = imports.get(node.id, node.id)
    return ".".join([base, *reversed(parts)])


def uses_borrowed(body: list[ast.stmt], function: str, borrowed: tuple[str, ...],
                  forbidden: tuple[str, ...]) -> str | None:
    """Why `function` (top-level in a module with statements `body`) may not be graded,
    or None: it names a borrowed function, a forbidden name, or a hidden call."""
    imports, stars = _imports(body)
    wanted = {last_name(p): p for p in borrowed}
    target = imports.get(function, "")  # `from minitf.model import causal_mask`: no def at all
    if target in borrowed or (last_name(target) in wanted and target.startswith("minitf")):
        return _borrowed_message(function, target)
    nodes = reached(body, function)
    if not nodes:
        return None
    own = set(_top_level(body))
    for node in nodes:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Attribute):
                name = sub.attr
                if name in wanted:
                    return _borrowed_message(function, wanted[name])
                if name in forbidden:
                    return _forbidden_message(function, name, attribute=True)
                if name in HIDDEN_CALLS:
                    return _hidden_message(function, name)
            elif isinstance(sub, ast.Name) and sub.id not in own:
                name = sub.id
                target = imports.get(name, "")
                from_minitf = target.startswith("minitf") or (
                    not target and any(m.startswith("minitf") for m in stars))
                if target in borrowed or (name in wanted and from_minitf):
                    return _borrowed_message(function, target if target in borrowed else
                                             wanted[name])
                if name in forbidden or (target and last_name(target) in forbidden):
                    return _forbidden_message(function, name, attribute=False)
                if name in HIDDEN_CALLS or target.split(".")[0] in HIDDEN_CALLS:
                    return _hidden_message(function, name)
            elif isinstance(sub, ast.Call) and "encode" in forbidden:
                # bytes(text, "utf-8") is str.encode by another name
                callee = _dotted(sub.func, imports)
                if callee in ("bytes", "bytearray") and (
                        len(sub.args) > 1 or any(k.arg == "encoding" for k in sub.keywords)):
                    return _forbidden_message(function, "encode", attribute=True)
    return None


def whose_answer(path: str) -> str:
    """How the messages name a borrowed function `path`: minitf's answer, or a library's."""
    if path.startswith("minitf"):
        return "minitf's own answer to this exercise"
    return "which does this exercise's work for you"


def _borrowed_message(function: str, path: str) -> str:
    return f"{function} uses {path}, {whose_answer(path)}: write it yourself (0 points)"


def _forbidden_message(function: str, name: str, *, attribute: bool) -> str:
    what = f".{name}" if attribute else name
    return f"{function} uses {what}, which this exercise rules out (0 points)"


def _hidden_message(function: str, name: str) -> str:
    return (f"{function} (or a helper it uses) uses {name}; graded functions may not use "
            f"{', '.join(HIDDEN_CALLS[:5])}, ... because the grader can't see what they call "
            "(0 points)")


# --- traps while the student's function runs -------------------------------------------


def resolve(path: str) -> tuple[object, str, object]:
    """(owner, attribute name, object) for a dotted path like `minitf.lens.LensResult.rank`."""
    parts = path.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            owner = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for part in parts[i:-1]:
            owner = getattr(owner, part)
        return owner, parts[-1], getattr(owner, parts[-1])
    raise ValueError(f"can't find {path}: name a module attribute, e.g. minitf.bpe.merge")


@contextlib.contextmanager
def traps(borrowed: tuple[str, ...], namespace: dict | None = None) -> Iterator[list[str]]:
    """While inside, every borrowed function raises BorrowedAnswer; yields the list of
    paths that were called (also when the student's code caught the exception)."""
    called: list[str] = []
    patched: list[tuple[object, str, object]] = []
    try:
        for path in borrowed:
            owner, name, original = resolve(path)
            if not callable(original):  # a table: only the reading of the source guards it
                continue

            def trap(*args, _path=path, **kwargs):
                called.append(_path)
                raise BorrowedAnswer(f"{_path} may not be used in this exercise")

            # the owner itself (for a method: the class, keeping a classmethod's wrapper)
            raw = vars(owner).get(name, original) if isinstance(owner, type) else original
            setattr(owner, name, trap)
            patched.append((owner, name, raw))
            for holder in list(sys.modules.values()):  # re-exports, `from x import f` copies
                try:
                    items = list(vars(holder).items())
                except TypeError:
                    continue
                for key, value in items:
                    if value is original and holder is not owner:
                        try:
                            setattr(holder, key, trap)
                        except (AttributeError, TypeError):  # a read-only extension module
                            continue
                        patched.append((holder, key, original))
            if namespace is not None:
                for key, value in list(namespace.items()):
                    if value is original:
                        patched.append((namespace, key, original))
                        namespace[key] = trap
        yield called
    finally:
        for holder, key, original in reversed(patched):
            if isinstance(holder, dict):
                holder[key] = original
            else:
                setattr(holder, key, original)
