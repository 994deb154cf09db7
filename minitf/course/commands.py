"""The course's commands: `minitf lesson`, `check`, `teacher export|grade` and `doctor`.

`minitf.cli` adds them to the `minitf` command; each is a thin layer over the course wing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from minitf import course
from minitf.course import check as course_check
from minitf.course import sandbox as course_sandbox
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
        "export", help="nbgrader source + student notebooks, and hidden test cases",
        description="Write DIR/source (nbgrader source notebooks), DIR/release (what students "
        "get) and DIR/hidden_tests (test cases drawn from your secret, with the expected "
        "outputs; keep them to yourself). See docs/teacher.md.")
    export.add_argument("lessons", type=int, nargs="+", help="lesson numbers")
    export.add_argument("--to", required=True, help="folder to write the export into")
    secret = export.add_mutually_exclusive_group()
    secret.add_argument("--secret-file", help="key file the hidden cases are drawn with; made "
                        "(random) if missing (default: DIR/hidden_tests/secret.key)")
    secret.add_argument("--secret", help="a secret text instead of a key file (16+ characters)")
    export.add_argument("--gradescope", action="store_true",
                        help="also write DIR/gradescope/NN_name.zip autograders")
    export.set_defaults(func=_cmd_teacher_export)
    grade = teacher_sub.add_parser(
        "grade", help="grade SUBMISSIONS/STUDENT/... into a gradebook, results and feedback",
        description="Run every student's files on the hidden cases, each in its own "
        "sandboxed process, and write gradebook.csv, results.csv and feedback/STUDENT.md "
        "into a new folder (an earlier run's folder is never overwritten).")
    grade.add_argument("submissions", help="folder with one subfolder per student")
    grade.add_argument("--out", help="folder for this run (default: graded/ beside "
                       "SUBMISSIONS; if it exists, graded-2/, graded-3/, ...)")
    grade.add_argument("--tests", help="hidden tests folder (default: hidden_tests/ beside "
                       "SUBMISSIONS, as `teacher export` lays it out)")
    defaults = course_sandbox.Limits()
    grade.add_argument("--time-limit", type=float, default=defaults.time_s, metavar="S",
                       help=f"seconds per exercise (default {defaults.time_s:g})")
    grade.add_argument("--memory-limit", type=int, default=defaults.memory_mb, metavar="MB",
                       help=f"address space per submission (default {defaults.memory_mb})")
    grade.add_argument("--jobs", type=int, help="submissions graded at once (default: one per "
                       "CPU core)")
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
    written = write_lesson(args.number, Path(args.out), student=not args.solution,
                           notebook=args.notebook)
    print(written.note)
    if not args.solution:
        print(f"fill in the TODOs, then run: minitf check {args.number} {written.path}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    path = Path(args.file) if args.file else course_check.default_file(args.number)
    results = course_check.check_file(args.number, path)
    print(f"lesson {args.number}: checking {path}")
    print(course_check.format_report(results))
    return 0 if all(r.status == course_check.PASSING for r in results) else 1


def _cmd_teacher_export(args: argparse.Namespace) -> int:
    written = course_teacher.export(
        args.lessons, Path(args.to), secret=args.secret,
        secret_file=Path(args.secret_file) if args.secret_file else None,
        gradescope=args.gradescope)
    print(f"wrote {len(written)} files under {args.to} (give students {args.to}/release/; "
          f"keep {args.to}/hidden_tests/ to yourself)")
    return 0


def _cmd_teacher_grade(args: argparse.Namespace) -> int:
    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"--jobs must be at least 1; got {args.jobs}")
    limits = course_sandbox.Limits(time_s=args.time_limit, memory_mb=args.memory_limit)
    report = course_teacher.grade(Path(args.submissions), Path(args.out) if args.out else None,
                                  Path(args.tests) if args.tests else None, limits=limits,
                                  jobs=args.jobs)
    for name, mine in report.grades.items():
        print(f"{name}: {sum(g.score for g in mine):g}/{sum(g.points for g in mine):g}")
    if not report.isolated:
        print("note: this system has no Landlock, so submissions could read and write your "
              "files while they ran (see docs/teacher.md)", file=sys.stderr)
    print(f"graded {len(report.grades)} students in {report.seconds:.0f} s: wrote "
          f"{report.folder}/gradebook.csv, results.csv and feedback/")
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
