"""The classroom wing: what the lessons share, and the course's own tools.

The library (`minitf.model`, `minitf.train`, the lens family, ...) never imports from
here. This package holds what only the course needs:

- this module: where lessons, checks, figures and cached models live; quick mode; the
  figure helpers; the lesson models, trained once and cached;
- `minitf.course.notebooks`: a lesson's student, solution and notebook versions;
- `minitf.course.check`: checking a learner's exercises;
- `minitf.course.teacher`: exporting lessons for a class and grading submissions;
- `minitf.course.seahorse`: the toy language of the lesson "When the token doesn't exist";
- `minitf.course.commands`: the `minitf lesson|check|teacher|doctor` commands.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

# every figure has the same size and resolution, so regenerated figures diff cleanly;
# lessons size theirs with course.FIGSIZE
from minitf.plots import DPI, FIGSIZE  # noqa: F401

QUICK_ENV = "MINITF_QUICK"

# the checkout: minitf/ sits beside lessons/, figures/ and docs/ (editable install)
REPO_ROOT = Path(__file__).resolve().parents[2]

# --- where things are ----------------------------------------------------------------


def quick_mode() -> bool:
    """True when a lesson should run its short version: `MINITF_QUICK=1` or `--quick`."""
    flag = os.environ.get(QUICK_ENV, "").strip().lower()
    return flag in {"1", "true", "yes", "on"} or "--quick" in sys.argv[1:]


def lessons_dir() -> Path:
    """The folder of lesson sources: `$MINITF_LESSONS_DIR`, else `lessons/` in the checkout."""
    # a checkout (editable install) has lessons/ beside minitf/; a wheel has minitf/lessons/
    default = REPO_ROOT / "lessons"
    if not default.is_dir():
        default = Path(__file__).resolve().parents[1] / "lessons"
    folder = Path(os.environ.get("MINITF_LESSONS_DIR", default))
    if not folder.is_dir():
        raise FileNotFoundError(
            f"no lessons folder at {folder}; install minitf from a checkout "
            "(pip install -e .) or set MINITF_LESSONS_DIR"
        )
    return folder


def checks_dir() -> Path:
    """The folder of exercise checks, `lessons/checks/` (one `NN_checks.py` per lesson)."""
    return lessons_dir() / "checks"


def lesson_path(number: int) -> Path:
    """The source file of lesson `number`, e.g. 1 -> lessons/01_text_is_bytes.py."""
    found = sorted(lessons_dir().glob(f"{number:02d}_*.py"))
    if not found:
        available = ", ".join(str(n) for n, _ in list_lessons()) or "none"
        raise ValueError(f"there is no lesson {number}; available lessons: {available}")
    return found[0]


def list_lessons() -> list[tuple[int, Path]]:
    """Every lesson as (number, path), in order."""
    out = []
    for path in sorted(lessons_dir().glob("[0-9][0-9]_*.py")):
        out.append((int(path.name[:2]), path))
    return out


def figures_dir() -> Path:
    """Where lessons write figures: `$MINITF_FIGURES_DIR`, else `figures/` under the cwd."""
    folder = Path(os.environ.get("MINITF_FIGURES_DIR", Path.cwd() / "figures"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


GPT2_FILES_URL = "https://huggingface.co/openai-community/gpt2/resolve/main/"  # + file name


def gpt2_dir() -> Path | None:
    """A folder with GPT-2's `vocab.json` + `merges.txt`, or None when there is none.

    Looks at `$MINITF_GPT2_DIR`, then `shared/data/gpt2` beside the checkout (where CI
    keeps a copy), then the `transformers` library's download cache. The files are public
    (GPT2_FILES_URL + "vocab.json", + "merges.txt").
    """
    hub = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"
    cached = sorted(hub.glob("models--openai-community--gpt2/snapshots/*"))
    cached += sorted(hub.glob("models--gpt2/snapshots/*"))
    candidates = [os.environ.get("MINITF_GPT2_DIR"), REPO_ROOT.parent / "shared/data/gpt2",
                  *cached]  # fmt: skip
    for folder in candidates:
        if folder and all((Path(folder) / name).is_file() for name in ("vocab.json",
                                                                        "merges.txt")):
            return Path(folder)
    return None


def cache_dir() -> Path:
    """Where lessons keep the models they train: `$MINITF_CACHE`, else ~/.cache/minitf
    (the same folder as the library's tokenised corpora, `minitf.corpora.cache_dir`)."""
    from minitf.corpora import cache_dir as library_cache

    return library_cache()


def trained_model(task_name: str = "addition", *, steps: int | None = None, seed: int = 0,
                  **task_options) -> tuple[dict, object, object]:
    """A model trained on a toy task with `minitf train`'s defaults -> (params, config, task).

    Trained once, then loaded from `cache_dir()`, so the lessons that study the same model
    don't each train it. Quick mode trains it the same way: the lessons' claims about it
    hold in both modes. Delete the cache folder to retrain.
    """
    from minitf.tasks import config_for, make_task, train_defaults
    from minitf.train import train

    task = make_task(task_name, **task_options)
    model, settings = train_defaults(task)
    settings = dataclasses.replace(settings, seed=seed,
                                   steps=settings.steps if steps is None else steps)  # fmt: skip
    config = config_for(task, **model)
    spec = "-".join(f"{k}{v}" for k, v in sorted(task.spec.items()))

    def fit() -> dict:
        return train(config, task, settings, progress=False).params

    name = f"{task.name}-{spec}-steps{settings.steps}-seed{seed}"
    return cached_params(name, config, settings.steps, fit), config, task


# The course's language model: 6 blocks (so the logit lens has a middle), narrow enough to
# train in well under a minute on 2 CPU cores, on Python's own docs with 1024 BPE tokens.
TEXT_MODEL = {"n_layer": 6, "n_head": 4, "d_model": 64, "d_mlp": 256}
# its training (minitf.train.TrainConfig fields): 400 steps of 32 windows of 64 tokens
TEXT_TRAINING = {"steps": 400, "batch_size": 32, "lr": 3e-3, "warmup": 50, "beta2": 0.99}
TEXT_SNAPSHOTS = (0, 25, 50, 100, 200, 400)  # steps at which its training is sampled
TEXT_PROMPT = "The for statement"  # what the snapshots continue


@dataclasses.dataclass(frozen=True)
class TextModel:
    """The course's language model and the record of its training (`trained_text_model`)."""

    params: dict
    config: object  # minitf.model.Config
    task: object  # minitf.text.TextTask (Python's docs, BPE 1024, context 64)
    snapshots: list[dict]  # [{"step", "val_loss", "bits_per_byte", "sample"}] at TEXT_SNAPSHOTS
    seed: int


def trained_text_model(seed: int = 0) -> TextModel:
    """The course's language model, trained once (under a minute on 2 cores) and then
    loaded from the cache.

    While it trains, the model continues TEXT_PROMPT at each of TEXT_SNAPSHOTS (temperature
    0.8, a fixed key) and its validation loss is measured there; those records are cached
    with it. Quick mode trains the same model, so the lessons' claims hold in both modes.
    """
    import json

    from minitf.checkpoint import write_json
    from minitf.text import continue_text, text_task
    from minitf.train import TrainConfig, train

    task = text_task(progress=False)
    config = task.config(**TEXT_MODEL)
    settings = TrainConfig(**TEXT_TRAINING, seed=seed)
    size = "L{n_layer}H{n_head}D{d_model}M{d_mlp}".format(**TEXT_MODEL)
    name = (f"text-{task.spec['corpus']['sha256'][:12]}-bpe{task.tokenizer.vocab_size}-{size}-"
            f"steps{settings.steps}-warmup{settings.warmup}-seed{seed}")  # fmt: skip
    record = cache_dir() / name / "snapshots.json"
    snapshots: list[dict] = []

    def snapshot(step: int, params: dict) -> None:
        if step in TEXT_SNAPSHOTS:
            score = task.score(params, config)  # the default 200 validation windows
            snapshots.append({"step": step, "val_loss": score.val_loss,
                              "bits_per_byte": score.bits_per_byte,
                              "sample": continue_text(params, config, task.tokenizer,
                                                      TEXT_PROMPT, 48, seed=0)})  # fmt: skip

    def fit() -> dict:
        params = train(config, task, settings, progress=False, callback=snapshot).params
        write_json(record, snapshots)  # atomic: lessons running together may read it
        return params

    if not record.is_file():  # a model cached without its record is trained again
        (cache_dir() / name / "checkpoint" / "config.json").unlink(missing_ok=True)
    params = cached_params(name, config, settings.steps, fit)
    snapshots = json.loads(record.read_text(encoding="utf-8"))
    return TextModel(params, config, task, snapshots, seed)


def cached_params(name: str, config, steps: int, fit) -> dict:
    """Parameters that `fit()` trains for `steps` steps, trained once and then loaded from
    `cache_dir()/name/checkpoint` (while its config and step count still match)."""
    import jax

    from minitf.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint

    checkpoint = cache_dir() / name / "checkpoint"
    if has_checkpoint(checkpoint):  # saves are crash-safe and locked: lessons may share it
        try:
            saved = load_checkpoint(checkpoint)
        except ValueError as err:
            print(f"the cached {name} is damaged ({err}); training it again")
        else:
            if saved.config == config and saved.step == steps:
                return saved.params
    print(f"training {name} for {steps} steps (once; cached in {checkpoint.parent})")
    params = jax.device_get(fit())  # host arrays, like a loaded checkpoint
    save_checkpoint(checkpoint, params, config, None, steps)
    return params


# --- helpers the lessons share ---------------------------------------------------------



def setup_matplotlib() -> None:
    """Draw off-screen (Agg) when run as a script; leave a notebook's inline backend alone.
    Also keeps JAX's compiled code on disk, so a lesson's second run starts faster."""
    import matplotlib

    from minitf.devices import setup_compilation

    setup_compilation()

    if "ipykernel" not in sys.modules:
        matplotlib.use("Agg")


def save_figure(fig: object, name: str) -> Path:
    """Save a matplotlib figure under `figures_dir()` at the course's dpi; return the path."""
    path = figures_dir() / name
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    print(f"figure written: {path}")
    return path
