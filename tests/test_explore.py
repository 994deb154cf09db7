"""`minitf explore`: the page's numbers against the library, the file, the command, the
server; then the page itself in a real headless Chromium (tests/test_explore_browser.py).

The page must show exactly what Python computes, so the data are compared with
`minitf.lens.logit_lens`, the activation cache and `direct_logit_attribution` directly.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitf.attribution import direct_logit_attribution
from minitf.explore import data as explore_data
from minitf.explore.page import GENERATOR, render, write_page
from minitf.lens import logit_lens
from minitf.model import forward
from minitf.plots import pca_2d
from minitf.tasks import addition, config_for
from minitf.tuned_lens import (
    TUNED_LENS_FILE,
    TunedLens,
    load_tuned_lens,
    save_tuned_lens,
    tuned_lens,
)

TASK = addition(2)  # "12+34=046": prompt 6 tokens, answer 3
SPEC = {"name": TASK.name, **TASK.spec}
CONFIG = config_for(TASK, n_layer=2, n_head=2, d_model=32, d_mlp=64)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A briefly trained 2-digit addition model in a run folder (varied probabilities)."""
    from minitf.train import train

    out = tmp_path_factory.mktemp("explore-run")
    train(CONFIG, TASK, steps=150, batch_size=32, lr=1e-2, seed=0, out=out, progress=False)
    return out


@pytest.fixture(scope="module")
def params(run_dir):
    from minitf.checkpoint import load_checkpoint

    return jax.tree.map(jnp.asarray, load_checkpoint(run_dir / "checkpoint").params)


# --- the numbers ---------------------------------------------------------------------------


def test_lens_view_is_the_python_lens(params):
    tuned = TunedLens.identity(CONFIG)
    got = explore_data.analyze(params, CONFIG, TASK.tokenizer, "12+34=046", tuned=tuned)
    ids = TASK.tokenizer.encode("12+34=046")
    assert got["ids"] == ids and got["note"] is None  # no task given: read as typed
    for name, lens in [("logit", logit_lens(params, CONFIG, ids)),
                       ("tuned", tuned_lens(params, CONFIG, ids, tuned))]:  # fmt: skip
        view = got["lens"][name]
        for t in range(len(ids)):
            top_ids, top_probs = lens.top_k(5, t)  # (L+1, 5) each
            assert np.array_equal(np.asarray(view["top_ids"])[:, t], top_ids)
            np.testing.assert_allclose(np.asarray(view["top_probs"])[:, t], top_probs, atol=1e-6)
            assert view["final"][t] == top_ids[-1, 0]
            assert np.array_equal(np.asarray(view["rank"])[:, t], lens.rank(top_ids[-1, 0], t))
        np.testing.assert_allclose(view["kl"], lens.kl_to_final(), atol=1e-5)
    assert got["tokens"]["10"] == "+" and set(got["tokens"]) >= {str(i) for i in ids}


def test_attention_and_attribution_are_the_librarys(params):
    got = explore_data.analyze(params, CONFIG, TASK.tokenizer, "12+34=046")
    ids = got["ids"]
    _, acts = forward(params, jnp.asarray([ids]), CONFIG, cache=True)
    for layer in range(CONFIG.n_layer):
        pattern = np.asarray(acts[f"blocks.{layer}.attn_pattern"][0])  # (H, T, T)
        for h in range(CONFIG.n_head):
            for t in range(len(ids)):
                np.testing.assert_allclose(got["attention"][layer][h][t], pattern[h, t, : t + 1],
                                           atol=1e-5)  # fmt: skip
                assert pattern[h, t, t + 1 :].sum() == 0  # the page leaves out the masked part
    final_top = np.asarray(got["lens"]["logit"]["top_ids"])[-1]  # (T, 5)
    for t, candidates in enumerate(got["attribution"]):
        want = [int(i) for i in final_top[t]]
        if t + 1 < len(ids) and ids[t + 1] not in want:
            want.append(ids[t + 1])  # the token that really comes next is offered too
        assert [c["id"] for c in candidates] == want
        for c in candidates[:2]:
            ref = direct_logit_attribution(params, CONFIG, ids, c["id"], t)
            assert got["components"] == ref.labels
            np.testing.assert_allclose(c["values"], ref.values, atol=1e-4)
            assert abs(sum(c["values"]) - c["logit"]) < 1e-2  # the bars add up to the logit


def test_a_whole_prompt_is_completed_with_the_models_answer(params):
    got = explore_data.analyze(params, CONFIG, TASK.tokenizer, "12+34=", task=TASK)
    predicted = TASK.predict(params, CONFIG, np.array([TASK.tokenizer.encode("12+34=")]))[0]
    assert got["ids"] == TASK.tokenizer.encode("12+34=") + predicted.tolist()
    shown = TASK.tokenizer.decode(predicted)
    assert got["note"].startswith(f"the model's answer: {shown} ")
    assert got["note"].endswith("✓") == (shown == "046") and got["prompt_len"] == 6
    for partial in ("12+3", "12+34=04", "1+234=", "12=34+"):  # not a prompt: read as typed
        assert explore_data.analyze(params, CONFIG, TASK.tokenizer, partial, task=TASK)["ids"] == (
            TASK.tokenizer.encode(partial))


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "the input is empty"), ("12a+3", "not in this tokenizer's alphabet"),
     ("1" * 10, "at most max_len=9; shorten it")],
)  # fmt: skip
def test_bad_input_is_one_sentence(params, text, message):
    with pytest.raises(ValueError, match=message) as err:
        explore_data.analyze(params, CONFIG, TASK.tokenizer, text, task=TASK)
    assert "\n" not in str(err.value)


def test_the_map_is_the_lessons_pca_with_cosine_neighbours(params):
    vocab = explore_data.vocabulary(params, CONFIG, TASK.tokenizer)
    embed = np.asarray(params["embed"])  # (V, D)
    coords, explained = pca_2d(embed)
    assert vocab["ids"] == list(range(CONFIG.vocab_size))
    np.testing.assert_allclose(vocab["xy"], coords, atol=1e-4)
    np.testing.assert_allclose(vocab["explained"], explained, atol=1e-4)
    unit = embed / np.linalg.norm(embed, axis=1, keepdims=True)
    for i in (0, 5, 11):
        cosine = unit @ unit[i]
        cosine[i] = -np.inf
        assert vocab["neighbours"][i] == np.argsort(-cosine, kind="stable")[:5].tolist()
    assert vocab["tokens"]["11"] == "="


def test_a_large_vocabulary_map_keeps_the_inputs_tokens():
    from minitf.chars import CharTokenizer
    from minitf.model import Config, init_params

    tok = CharTokenizer("".join(chr(0x4E00 + i) for i in range(40)))
    config = Config(vocab_size=40, n_layer=1, n_head=1, d_model=8, d_mlp=8, max_len=4)
    p = init_params(config, jax.random.key(0))
    old = explore_data.MAP_LIMIT
    try:
        explore_data.MAP_LIMIT = 10
        vocab = explore_data.vocabulary(p, config, tok, focus=[3, 39])
    finally:
        explore_data.MAP_LIMIT = old
    assert len(vocab["ids"]) == 10 and {3, 39} <= set(vocab["ids"]) and vocab["total"] == 40


def test_default_inputs_are_test_problems_or_a_clear_error():
    texts = explore_data.default_inputs(SPEC)
    assert len(texts) == explore_data.N_DEFAULT
    prompts = np.array([TASK.tokenizer.encode(t) for t in texts])
    assert TASK.is_test(prompts).all()
    with pytest.raises(ValueError, match="--text TEXT"):
        explore_data.default_inputs(None)


# --- the file ------------------------------------------------------------------------------


def test_the_page_is_one_self_contained_file(params, tmp_path):
    path = write_page(tmp_path / "explore.html", params, CONFIG, TASK.tokenizer, task=SPEC)
    page = path.read_text(encoding="utf-8")
    assert GENERATOR in page and page.count("<script") == 2  # the data and the script, inline
    assert "<link" not in page and " src=" not in page and "@import" not in page
    # the only URL is the SVG namespace (a name, never fetched)
    assert {m for m in re.findall(r"https?://[^\s\"')]+", page)} == {
        "http://www.w3.org/2000/svg"}
    assert path.stat().st_size < 2_000_000
    data = json.loads(page.split('id="minitf-data">')[1].split("</script>")[0])
    assert data["format"] == explore_data.FORMAT and len(data["inputs"]) == explore_data.N_DEFAULT
    assert all(a["note"].startswith("the model's answer") for a in data["inputs"])


def test_text_that_looks_like_html_cannot_break_out_of_the_data():
    from minitf.chars import CharTokenizer
    from minitf.model import Config, init_params

    tok = CharTokenizer("</script>&\"' ab")
    config = Config(vocab_size=tok.vocab_size, n_layer=1, n_head=1, d_model=8, d_mlp=8,
                    max_len=16)  # fmt: skip
    p = init_params(config, jax.random.key(0))
    data = explore_data.page_data(p, config, tok, ["</script> a"], title="a </script> title")
    page = render(data)
    assert page.count("</script>") == 2  # the data's end and the script's end, nothing else
    data_text = page.split('id="minitf-data">')[1].split("</script>")[0]
    assert json.loads(data_text)["inputs"][0]["text"] == "</script> a"
    assert "<title>a &lt;/script&gt; title</title>" in page


def test_writing_never_replaces_a_file_it_did_not_write(params, tmp_path):
    mine = tmp_path / "notes.html"
    mine.write_text("<html>my notes</html>", encoding="utf-8")
    with pytest.raises(ValueError, match="not a page minitf explore wrote"):
        write_page(mine, params, CONFIG, TASK.tokenizer, ["1+2"])
    assert mine.read_text(encoding="utf-8") == "<html>my notes</html>"
    page = write_page(tmp_path / "explore.html", params, CONFIG, TASK.tokenizer, ["1+2"])
    write_page(page, params, CONFIG, TASK.tokenizer, ["3+4"])  # its own page: replaced
    assert '"text":"3+4"' in page.read_text(encoding="utf-8")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_tuned_lens_file_round_trip(tmp_path):
    tuned = TunedLens(weights=jnp.arange(2 * 32 * 32, dtype=jnp.float32).reshape(2, 32, 32),
                      biases=jnp.ones((2, 32)))  # fmt: skip
    path = save_tuned_lens(tuned, tmp_path / TUNED_LENS_FILE)
    back = load_tuned_lens(path, CONFIG)
    assert np.array_equal(back.weights, tuned.weights) and np.array_equal(back.biases, tuned.biases)
    other = config_for(TASK, n_layer=3, n_head=2, d_model=32, d_mlp=64)
    with pytest.raises(ValueError, match="another model"):
        load_tuned_lens(path, other)
    (tmp_path / "bad.npz").write_text("not a zip", encoding="utf-8")
    with pytest.raises(ValueError, match="not a tuned lens"):
        load_tuned_lens(tmp_path / "bad.npz", CONFIG)


# --- the command ---------------------------------------------------------------------------


def page_data_of(path: Path) -> dict:
    page = path.read_text(encoding="utf-8")
    return json.loads(page.split('id="minitf-data">')[1].split("</script>")[0])


def test_cli_explore_writes_the_page_and_keeps_a_tuned_lens(run_dir, capsys):
    from minitf.cli import main

    assert main(["explore", str(run_dir), "--text", "12+34=", "--text", "5+6"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {run_dir / 'explore.html'}" in out and "no network needed" in out
    data = page_data_of(run_dir / "explore.html")
    assert [a["text"] for a in data["inputs"]] == ["12+34=", "5+6"] and not data["has_tuned"]
    assert "minitf explore" in data["hint"] and "--serve" in data["hint"]

    assert main(["explore", str(run_dir / "checkpoint"), "--fit-tuned-lens"]) == 0
    assert "fitted a tuned lens" in capsys.readouterr().out
    assert (run_dir / "checkpoint" / TUNED_LENS_FILE).is_file()
    data = page_data_of(run_dir / "explore.html")  # beside checkpoint/, as `minitf lens` does
    assert data["has_tuned"] and all("tuned" in a["lens"] for a in data["inputs"])
    assert main(["explore", str(run_dir)]) == 0  # found again without the option
    assert page_data_of(run_dir / "explore.html")["has_tuned"]
    (run_dir / "checkpoint" / TUNED_LENS_FILE).unlink()


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--port", "8123"], "--port only applies with --serve"),
     (["--serve", "--out", "x.html"], "choose one"),
     (["--text", "12*3"], "not in this tokenizer's alphabet"),
     (["--serve", "--port", "70000"], "--port must be 0..65535")],
)  # fmt: skip
def test_cli_explore_bad_input_is_one_line(run_dir, capsys, extra, message):
    from minitf.cli import main

    assert main(["explore", str(run_dir), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("minitf: error:") and err.count("\n") == 1 and message in err


def test_cli_explore_refuses_a_foreign_out_file_and_a_missing_model(tmp_path, capsys):
    from minitf.cli import main

    mine = tmp_path / "mine.html"
    mine.write_text("mine", encoding="utf-8")
    assert main(["explore", str(tmp_path / "nowhere"), "--out", str(mine)]) == 2
    assert "not a page minitf explore wrote" in capsys.readouterr().err
    assert main(["explore", str(tmp_path / "nowhere")]) == 2
    assert "no checkpoint" in capsys.readouterr().err


# --- the server ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(params):
    from minitf.explore.server import make_server

    httpd = make_server(params, CONFIG, TASK.tokenizer, ["12+34="], task=SPEC, port=0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def request(server, path: str, body: bytes | None = None, headers: dict | None = None):
    """-> (status, the reply's text)."""
    url = f"http://127.0.0.1:{server.server_port}{path}"
    req = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as reply:
            return reply.status, reply.read().decode("utf-8")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8")


def test_server_serves_the_page_and_answers_inputs(server, params):
    assert server.server_address[0] == "127.0.0.1"
    status, page = request(server, "/")
    assert status == 200 and GENERATOR in page and '"serve":true' in page
    status, reply = request(server, "/api/analyze", json.dumps({"text": "5+6"}).encode())
    assert status == 200
    want = explore_data.analyze(params, CONFIG, TASK.tokenizer, "5+6", task=TASK)
    assert json.loads(reply) == json.loads(json.dumps(want, ensure_ascii=False))


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [(json.dumps({"text": "1x"}), 200, "not in this tokenizer's alphabet"),
     (json.dumps({"text": ""}), 200, "the input is empty"),
     (json.dumps({"text": "1" * 10}), 200, "max_len=9"),
     ("not json", 400, 'send JSON like {"text"'),
     (json.dumps({"text": 5}), 400, 'send JSON like {"text"')],
)  # fmt: skip
def test_server_answers_bad_input_with_one_line(server, body, status, message):
    got_status, reply = request(server, "/api/analyze", body.encode())
    error = json.loads(reply)["error"]
    assert got_status == status and message in error and "\n" not in error


def test_server_refuses_other_hosts_and_paths(server):
    status, reply = request(server, "/", headers={"Host": "evil.example:80"})
    assert status == 403 and "only http://127.0.0.1" in json.loads(reply)["error"]
    assert request(server, "/secret")[0] == 404
    assert request(server, "/api/other", b"{}")[0] == 404


def test_serve_command_stops_cleanly_on_ctrl_c(run_dir):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "minitf.cli", "explore", str(run_dir), "--text", "1+2",
         "--serve", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        first = proc.stdout.readline()  # "serving the explore page at http://127.0.0.1:N/ ..."
        assert first.startswith("serving the explore page at http://127.0.0.1:"), (
            first + proc.stderr.read())
        url = first.split(" at ")[1].split()[0]
        with urllib.request.urlopen(url, timeout=30) as reply:
            assert GENERATOR in reply.read().decode("utf-8")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0 and "stopped the explore server" in out
    assert "Traceback" not in err


def test_a_port_in_use_is_one_sentence(server, params):
    from minitf.explore.server import make_server

    with pytest.raises(ValueError, match="pick another port with --port N"):
        make_server(params, CONFIG, TASK.tokenizer, ["1+2"], port=server.server_port)


def test_a_vocabulary_padded_past_the_tokenizer_shows_ids():
    from minitf.chars import CharTokenizer
    from minitf.model import Config, init_params

    tok = CharTokenizer("ab")
    config = Config(vocab_size=6, n_layer=1, n_head=1, d_model=8, d_mlp=8, max_len=4)
    p = init_params(config, jax.random.key(0))
    data = explore_data.page_data(p, config, tok, ["ab"])
    labels = data["inputs"][0]["tokens"]
    assert labels["0"] == "a" and all(labels[str(i)] == f"[{i}]" for i in range(2, 6) if
                                      str(i) in labels)  # fmt: skip
    assert len(labels) > 2  # the lens ranks the padding rows too
    assert data["vocab"]["ids"] == [0, 1]  # the map shows the tokenizer's tokens only
