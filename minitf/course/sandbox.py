"""Running a submission where it can't hang, crash or harm the grader.

`run_submission` runs one student's file for one lesson in a child process
(`python -m minitf.course.sandbox JOB FD`) and returns, per exercise, the outputs of its
function on the hidden inputs. The child never sees the expected outputs: the grader
compares (`minitf.course.hidden.score_exercise`), so a submission that fakes its results
only fakes its own answers. The child:

- limits itself before any student code runs: address space (RLIMIT_AS, `memory_mb`; a
  process with JAX reserves about 1.6 GB of address space of which ~0.4 GB is used, so
  the default 4096 MB leaves ~2.5 GB for the student), CPU seconds (RLIMIT_CPU), the size
  of any file it writes (RLIMIT_FSIZE), no core dumps, and one CPU core;
- imports what the lesson needs, then (on Linux with Landlock) gives up reading anything
  but Python's own folders and writing anything but its temp folder, opening TCP
  connections and signalling other processes (`minitf.course.landlock`);
- runs in a fresh temp folder (its cwd, HOME and TMPDIR), on the CPU only;
- executes only the submission's definitions (imports, functions, classes, constants;
  see `minitf.course.check.definition_parts`), never its other top-level code;
- reads the inputs from a file, writes each exercise's outputs to a file (never to
  stdout, so printing can't corrupt results: its output is captured, capped, counted),
  and reports progress on a pipe of its own.

The grader kills the child's whole process group when an exercise runs past its time
(`time_s`, wall clock) or loading past `load_s`, records "timed out after 5 s", and starts
a new child for the exercises still to run; a child that dies (out of memory, `os._exit`,
a segfault) costs only the exercise it was running.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from minitf.course import datafile


@dataclass(frozen=True)
class Limits:
    """What one submission may use while it is graded."""

    time_s: float = 10.0  # wall clock per exercise, all its hidden cases together
    load_s: float = 90.0  # starting Python + JAX and loading the file's definitions
    memory_mb: int = 4096  # address space (RLIMIT_AS), see the module docstring
    file_mb: int = 64  # the largest file the submission may write
    output_kb: int = 64  # stdout + stderr kept for the teacher (the rest is counted)

    def __post_init__(self) -> None:
        for name in ("time_s", "load_s", "memory_mb", "file_mb", "output_kb"):
            if not getattr(self, name) > 0:
                raise ValueError(f"the {name} limit must be positive; got {getattr(self, name)}")


@dataclass
class Run:
    """What running one submission produced."""

    outcomes: dict[str, dict]  # exercise -> {"cases": [...]} or {"error": ..., "message": ...}
    output: str  # the first output_kb of what it printed
    output_bytes: int  # how much it printed in all
    seconds: float
    isolated: bool  # whether the file system was closed off (Landlock)


SUBMISSION_STEM = "submitted"


def _child_env(work: Path) -> dict[str, str]:
    keep = ("PATH", "PYTHONPATH", "HOME", "MINITF_LESSONS_DIR", "LANG", "LC_ALL", "SYSTEMROOT")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(JAX_PLATFORMS="cpu", MPLBACKEND="Agg", MINITF_QUICK="1", PYTHONIOENCODING="utf-8",
               PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1", MALLOC_ARENA_MAX="2")
    return env


def run_submission(path: Path, lesson: int, inputs: dict[str, list[tuple]], *,
                   checks_folder: Path, limits: Limits | None = None, cpu: int | None = None,
                   ) -> Run:  # fmt: skip
    """Run lesson `lesson`'s exercises of the file `path` on `inputs` {exercise: [args]}."""
    start = time.perf_counter()
    limits = limits or Limits()
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="minitf-grade-") as tmp:
        job = Path(tmp)
        work, results = job / "work", job / "results"
        work.mkdir()
        results.mkdir()
        submission = work / (SUBMISSION_STEM + path.suffix)
        shutil.copyfile(path, submission)
        datafile.save(job / "inputs.npz", inputs)
        remaining = list(inputs)
        outcomes: dict[str, dict] = {}
        output, total, isolated = bytearray(), 0, False
        for _ in range(len(remaining) + 1):  # each restart finishes at least one exercise
            if not remaining:
                break
            (job / "job.json").write_text(json.dumps({
                "lesson": lesson, "checks": str(checks_folder), "name": path.name,
                "submission": submission.name, "exercises": remaining, "cpu": cpu,
                "limits": asdict(limits)}), encoding="utf-8")
            done, printed, count, isolated = _run_child(job, remaining, limits)
            outcomes.update(done)
            total += count
            output += printed[: max(0, limits.output_kb * 1024 - len(output))]
            remaining = [e for e in remaining if e not in outcomes]
        for exercise in remaining:
            outcomes[exercise] = {"error": "crashed", "message": "the grader could not run it"}
    return Run({e: outcomes[e] for e in inputs}, output.decode("utf-8", "replace"), total,
               time.perf_counter() - start, isolated)


def _run_child(job: Path, exercises: list[str], limits: Limits
               ) -> tuple[dict[str, dict], bytes, int, bool]:  # fmt: skip
    """One child process: outcomes of the exercises it finished or that killed it."""
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-m", "minitf.course.sandbox", str(job), str(write_fd)],
        cwd=job / "work", env=_child_env(job / "work"), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, pass_fds=(write_fd,),
        start_new_session=True)  # fmt: skip
    os.close(write_fd)
    selector = selectors.DefaultSelector()
    selector.register(read_fd, selectors.EVENT_READ, "events")
    selector.register(proc.stdout, selectors.EVENT_READ, "output")
    outcomes: dict[str, dict] = {}
    kept, total, pending, current, isolated = bytearray(), 0, b"", None, False
    deadline, limit = time.monotonic() + limits.load_s, limits.load_s
    open_streams = 2
    try:
        while open_streams:
            wait = deadline - time.monotonic()
            if wait <= 0:
                _kill(proc)
                if current is None:
                    message = (f"timed out after {limits.load_s:g} s while loading the file "
                               "(its imports and definitions)")
                    for exercise in exercises:
                        outcomes.setdefault(exercise, {"error": "timed out", "message": message})
                else:
                    outcomes[current] = {"error": "timed out",
                                         "message": f"timed out after {limit:g} s"}
                break
            for key, _ in selector.select(wait):
                data = os.read(key.fd if key.data == "events" else proc.stdout.fileno(), 1 << 16)
                if not data:
                    selector.unregister(key.fileobj)
                    open_streams -= 1
                    continue
                if key.data == "output":
                    total += len(data)
                    kept += data[: max(0, limits.output_kb * 1024 - len(kept))]
                    continue
                pending += data
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    event = _parse(line)
                    kind = event.get("event")
                    if kind == "ready":
                        isolated = bool(event.get("isolated"))
                    elif kind == "load_error":
                        for exercise in exercises:
                            outcomes.setdefault(exercise, {"error": "failing",
                                                           "message": str(event.get("message"))})
                    elif kind == "start" and event.get("exercise") in exercises:
                        current = event["exercise"]
                        deadline, limit = time.monotonic() + limits.time_s, limits.time_s
                    elif kind == "done" and event.get("exercise") == current:
                        outcomes[current] = _read_outcome(job / "results" / f"{current}.npz")
                        current = None
                        deadline = time.monotonic() + limits.time_s
        code = proc.wait()
        if current is not None and current not in outcomes:
            outcomes[current] = {"error": "crashed", "message": _death(code, limits, kept)}
    finally:
        _kill(proc)
        selector.close()
        os.close(read_fd)
        proc.stdout.close()
    return outcomes, bytes(kept), total, isolated


def _parse(line: bytes) -> dict:
    try:
        event = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return {}
    return event if isinstance(event, dict) else {}


def _kill(proc: subprocess.Popen) -> None:
    """Kill the child and everything it started (its own process group)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _death(code: int, limits: Limits, output: bytes) -> str:
    """Why a child died, in one sentence."""
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        why = {"SIGKILL": f"probably out of memory (the limit is {limits.memory_mb} MB)",
               "SIGXCPU": "it used up its CPU time",
               "SIGSEGV": "a crash in compiled code", "SIGABRT": "a crash in compiled code, "
               f"often memory running out (the limit is {limits.memory_mb} MB)"}.get(name, "")
        message = f"the process running it was killed by {name}" + (f": {why}" if why else "")
    else:
        message = f"it ended the process running it (exit code {code}; sys.exit or os._exit?)"
    last = output.decode("utf-8", "replace").strip().splitlines()[-1:] if output else []
    if last and ("Error" in last[0] or "error" in last[0]):
        message += f"; last output: {last[0][:200]}"
    return message


def _read_outcome(path: Path) -> dict:
    """An exercise's outcome as the child wrote it, read as untrusted plain data."""
    try:
        outcome = datafile.load(path)
        if isinstance(outcome, dict) and ("cases" in outcome or "error" in outcome):
            return outcome
    except Exception:  # noqa: BLE001 - whatever is in that file, it's a failing exercise
        pass
    return {"error": "crashed", "message": "its results could not be read"}


# --- the child -------------------------------------------------------------------------


def _limit_resources(limits: dict, n_exercises: int, cpu: int | None) -> None:
    try:
        import resource
    except ImportError:  # Windows: only the wall-clock limits apply
        return
    mb = 1 << 20
    cpu_s = int(limits["load_s"] + limits["time_s"] * n_exercises) + 10
    for which, value in ((resource.RLIMIT_AS, limits["memory_mb"] * mb),
                         (resource.RLIMIT_CPU, cpu_s),
                         (resource.RLIMIT_FSIZE, limits["file_mb"] * mb),
                         (resource.RLIMIT_CORE, 0)):  # fmt: skip
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):  # e.g. macOS doesn't enforce RLIMIT_AS
            pass
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-big write fails instead of killing
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        allowed = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {allowed[cpu % len(allowed)]})


def _readable_roots() -> list[Path]:
    """What the child keeps reading: system folders, Python's, minitf's and the lessons'."""
    from minitf import course

    roots = [Path(p) for p in ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc",
                               "/proc", "/sys", "/dev", "/opt")]  # fmt: skip
    roots += [Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix)]
    package = Path(course.__file__).resolve().parents[1]  # minitf/
    for entry in sys.path:
        path = Path(entry or ".").resolve()
        if path == package.parent:  # a checkout: only minitf/ and lessons/, not the rest
            roots += [package, path / "lessons"]
        elif path.exists():
            roots.append(path)
    return roots + [course.lessons_dir()]


def child_main(job_dir: Path, fd: int) -> int:
    """The child: limit itself, import, close the file system, load the file, run."""
    job = json.loads((job_dir / "job.json").read_text(encoding="utf-8"))
    events = os.fdopen(fd, "w", buffering=1, encoding="utf-8")
    # `python -m` put the work folder on sys.path: `import submitted` would run the whole file
    work = job_dir / "work"
    sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != work.resolve()]

    def send(**event: Any) -> None:
        events.write(json.dumps(event) + "\n")
        events.flush()

    limits = job["limits"]
    _limit_resources(limits, len(job["exercises"]), job.get("cpu"))
    import jax.numpy  # noqa: F401 - the lessons' arrays; imported before the file system closes
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401

    from minitf.course import borrowed, check, landlock  # noqa: F401 - borrowed: before the close
    from minitf.course.hidden import grading_of, run_cases

    checks = dict(check.load_checks(job["lesson"], Path(job["checks"])))
    submission = job_dir / "work" / job["submission"]
    try:
        parts = check.definition_parts(submission, job["name"])
    except (ValueError, FileNotFoundError) as err:
        send(event="load_error", message=f"your file could not be read: {err}")
        return 0
    os.environ.update(HOME=str(work), TMPDIR=str(work))
    tempfile.tempdir = str(work)
    isolated = landlock.restrict(read=_readable_roots() + [job_dir],
                                 write=[work, job_dir / "results", Path("/dev/null")]) > 0
    send(event="ready", isolated=isolated)
    inputs = datafile.load(job_dir / "inputs.npz", rebuild=True)
    try:
        module = check.load_definitions(submission, job["name"])
    except BaseException as err:  # noqa: BLE001 - whatever loading the file does
        where = check.location(err, {f for f, _ in parts})
        send(event="load_error", message=f"your file could not be loaded: "
             f"{type(err).__name__}: {str(err)[:300]}{where}")
        return 0
    for name in job["exercises"]:
        send(event="start", exercise=name)
        outcome = run_cases(module, name, grading_of(checks[name]) if name in checks else None,
                            inputs[name], memory_mb=limits["memory_mb"])
        try:
            datafile.save(job_dir / "results" / f"{name}.npz", outcome)
        except OSError:  # e.g. over the file size limit
            datafile.save(job_dir / "results" / f"{name}.npz", {
                "error": "failing", "message": f"its outputs were over {limits['file_mb']} MB"})
        send(event="done", exercise=name)
    return 0


if __name__ == "__main__":
    sys.exit(child_main(Path(sys.argv[1]), int(sys.argv[2])))
