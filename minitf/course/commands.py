"""The course's commands: `minitf lesson`, `check`, `teacher export|grade` and `doctor`.

`minitf.cli` adds them to the `minitf` command; each is a thin layer over the course wing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from minitf import course
from minitf.course import check as course_check
from minitf.course import teacher as course_teacher
from minitf.course.notebooks import write_lesson


def add_course_commands(sub: argparse._SubParsersAction) -> None:
    """`minitf lesson|check|teacher|doctor`: the course's lessons, exercise checks, setup check."""
    lesson = sub.add_parser(
        "lesson", help="write a lesson (student version by default) to work on",
        description="Write lesson N as a .py file (or .ipynb with --notebook) to work on. "
        "The student version has the exercises replaced by TODO stubs.",
    )
    lesson.add_argument("number", type=int, nargs="?", help="lesson number; omit to list them")
    version = lesson.add_mutually_exclusive_group()
    version.add_argument("--student", dest="solution", action="store_false", default=False,
                         help="exercises as TODO stubs (default)")
    version.add_argument("--solution", dest="solution", action="store_true",
                         help="the full lesson with the reference solutions")
    lesson.add_argument("--notebook", action="store_true", help="write a Jupyter notebook")
    lesson.add_argument("--out", default=".", help="folder to write into (default: .)")
    lesson.set_defaults(func=_cmd_lesson)

    check = sub.add_parser(
        "check", help="check your exercises of lesson N",
        description="Run lesson N's exercise checks on your file and report each exercise "
        "as not started, failing (with a hint) or passing. Exit code 0 only if all pass.",
    )
    check.add_argument("number", type=int, help="lesson number")
    check.add_argument("file", nargs="?", help="your .py or .ipynb (default: the lesson's "
                       "file name in the current folder)")
    check.set_defaults(func=_cmd_check)

    teacher = sub.add_parser("teacher", help="export lessons for a class and grade submissions")
    teacher_sub = teacher.add_subparsers(dest="teacher_command", required=True,
                                         metavar="{export,grade}")
    export = teacher_sub.add_parser(
        "export", help="student notebooks + hidden tests (nbgrader folder layout)")
    export.add_argument("lessons", type=int, nargs="+", help="lesson numbers")
    export.add_argument("--to", required=True, help="folder to write the export into")
    export.set_defaults(func=_cmd_teacher_export)
    grade = teacher_sub.add_parser(
        "grade", help="grade SUBMISSIONS/STUDENT/... into a CSV (one row per student x exercise)")
    grade.add_argument("submissions", help="folder with one subfolder per student")
    grade.add_argument("--csv", default="grades.csv", help="output CSV (default: grades.csv)")
    grade.add_argument("--tests", help="hidden tests folder (default: ../hidden_tests beside "
                       "SUBMISSIONS if present, else the lessons' own checks)")
    grade.set_defaults(func=_cmd_teacher_grade)

    doctor = sub.add_parser(
        "doctor", help="check the install: versions, JAX devices, a 5-second training run")
    doctor.add_argument("--seed", type=int, default=0, help="seed of the smoke training")
    doctor.add_argument("--seconds", type=float, default=5.0, help="smoke training budget")
    doctor.set_defaults(func=_cmd_doctor)


def _cmd_lesson(args: argparse.Namespace) -> int:
    if args.number is None:
        for number, path in course.list_lessons():
            print(f"{number:2d}  {path.stem}")
        return 0
    target = write_lesson(args.number, Path(args.out), student=not args.solution,
                                 notebook=args.notebook)
    print(f"wrote {target}")
    if not args.solution:
        print(f"fill in the TODOs, then run: minitf check {args.number} {target}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    path = Path(args.file) if args.file else course_check.default_file(args.number)
    results = course_check.check_file(args.number, path)
    print(f"lesson {args.number}: checking {path}")
    print(course_check.format_report(results))
    return 0 if all(r.status == course_check.PASSING for r in results) else 1


def _cmd_teacher_export(args: argparse.Namespace) -> int:
    written = course_teacher.export(args.lessons, Path(args.to))
    print(f"wrote {len(written)} files under {args.to} (give students {args.to}/release/)")
    return 0


def _cmd_teacher_grade(args: argparse.Namespace) -> int:
    rows = course_teacher.grade(Path(args.submissions), Path(args.csv),
                                Path(args.tests) if args.tests else None)
    students = sorted({r["student"] for r in rows})
    for name in students:
        mine = [r for r in rows if r["student"] == name]
        print(f"{name}: {sum(r['score'] for r in mine)}/{sum(r['max_score'] for r in mine)}")
    print(f"wrote {args.csv} ({len(rows)} rows)")
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    import functools
    import platform
    import time
    from importlib import metadata

    import jax
    import jax.numpy as jnp

    from minitf.model import Config, init_params
    from minitf.train import TrainConfig, loss_fn, make_optimizer, make_step

    if not args.seconds > 0:
        raise ValueError(f"--seconds must be a positive number of seconds; got {args.seconds}")
    print(f"python      {platform.python_version()} ({platform.machine()}, {platform.system()})")
    for dist in ("minitf-course", "jax", "jaxlib", "optax", "numpy", "matplotlib"):
        try:
            print(f"{dist:<11} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            print(f"{dist:<11} NOT INSTALLED")
    print(f"backend     {jax.default_backend()}")
    print(f"devices     {', '.join(str(d) for d in jax.devices())}")

    # smoke training: a one-layer model learns to continue a repeating sequence 0..7, with
    # the training step minitf trains everything with (constant learning rate)
    config = Config(vocab_size=8, n_layer=1, n_head=2, d_model=32, d_mlp=64, max_len=16)
    params = init_params(config, jax.random.key(args.seed))
    tokens = (jnp.arange(17) % 8)[None]  # (1, 17)
    batch = (tokens, jnp.ones_like(tokens, dtype=bool))  # every next token is scored
    settings = TrainConfig(steps=200, lr=1e-2, warmup=0, lr_end=1e-2, weight_decay=0.0)
    optimizer = make_optimizer(settings)
    step = make_step(functools.partial(loss_fn, config=config), optimizer)
    state = optimizer.init(params)

    start = time.perf_counter()
    params, state, first, _ = step(params, state, batch)
    first.block_until_ready()
    compile_s = time.perf_counter() - start
    # the budget counts training only: compiling is slow on a busy machine, not broken
    steps, loss, start = 1, first, time.perf_counter()
    while time.perf_counter() - start < args.seconds and steps < settings.steps:
        params, state, loss, _ = step(params, state, batch)
        steps += 1
    loss = float(loss)
    elapsed = time.perf_counter() - start
    print(f"smoke train {steps} steps in {elapsed:.1f} s (+ compile {compile_s:.1f} s): "
          f"loss {float(first):.3f} -> {loss:.3f}")
    if not loss < 0.5 * float(first):
        print("doctor: the smoke training did not learn; see docs/faq.md", file=sys.stderr)
        return 1
    print("ok: minitf works here")
    return 0
