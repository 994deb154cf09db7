"""The `minitf train|eval|sample` commands on a tiny run, and bad input giving exit code 2."""

from __future__ import annotations

import json

import pytest

from minitf.cli import main

TINY = ["--n-layer", "1", "--n-head", "2", "--d-model", "32", "--d-mlp", "64"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    argv = ["train", "copy", "--length", "3", "--steps", "20", "--batch-size", "16",
            "--eval-n", "20", "--out", str(out), "--no-progress", *TINY]  # fmt: skip
    assert main(argv) == 0
    return out


def test_train_writes_checkpoint_metrics_and_figure(run_dir):
    assert (run_dir / "checkpoint" / "params.npz").is_file()
    assert (run_dir / "loss.png").is_file()
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["task"] == "copy" and metrics["n"] == 20
    assert 0.0 <= metrics["exact_match"] <= 1.0 and metrics["train_seconds"] > 0
    assert len(metrics["history"]["loss"]) == 20


def test_eval_json(run_dir, capsys):
    assert main(["eval", str(run_dir), "--json", "--n", "30"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["task"] == "copy" and report["n"] == 30
    assert isinstance(report["exact_match"], float) and 0.0 <= report["exact_match"] <= 1.0


def test_sample_continues_the_prompt(run_dir, capsys):
    assert main(["sample", str(run_dir / "checkpoint"), "--prompt", "123="]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("123=") and len(line) == 7
    assert main(["sample", str(run_dir), "--prompt", "123=", "--temperature", "1",
                 "--top-k", "3", "--seed", "1"]) == 0  # fmt: skip


def test_resume_of_a_finished_run_only_evaluates(run_dir, capsys):
    argv = ["train", "copy", "--length", "3", "--steps", "20", "--batch-size", "16", "--eval-n",
            "20", "--out", str(run_dir), "--no-progress", "--resume", *TINY]  # fmt: skip
    assert main(argv) == 0
    assert "exact match" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "copy", "--digits", "3"], "--digits does not apply to task copy"),
        (["train", "copy", "--steps", "0"], "--steps must be positive"),
        (["train", "copy", "--eval-every", "-1"], "--eval-every must be 0 (never) or"),
        (["train", "copy", "--d-model", "30", "--n-head", "4"], "divisible by n_head"),
        (["train", "copy", "--resume"], "--resume needs --out"),
        (["eval", "/nonexistent/minitf-run"], "no checkpoint"),
        (["sample", "/nonexistent/minitf-run", "--prompt", "1"], "no checkpoint"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("minitf: error:") and message in err


def test_bad_prompt_characters_exit_2(run_dir, capsys):
    assert main(["sample", str(run_dir), "--prompt", "12a="]) == 2
    assert "not in this tokenizer's alphabet" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["train", "division"], ["train", "copy", "--bogus"], ["eval"]])
def test_argparse_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_demo_writes_everything_it_promises(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = ["demo", "--steps", "30", "--eval-n", "40", "--out", str(out), "--no-progress", *TINY]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "exact match on 40 held-out problems" in printed
    assert "logit lens at '='" in printed and "->" in printed  # samples and the lens table
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["n"] == 40 and 0.0 <= metrics["exact_match"] <= 1.0
    assert metrics["train_seconds"] > 0
    for name in ("checkpoint/params.npz", "loss.png", "lens_heatmap.png", "attention.png",
                 "embeddings.png", "explore.html", "checkpoint/tuned_lens.npz"):
        assert (out / name).is_file(), f"the demo did not write {name}"
    last = printed.strip().splitlines()[-3:]
    assert last[0].startswith(f"wrote {out / 'explore.html'}: open it in your browser")
    assert last[-1].startswith("done in")
