"""The explore page in a real headless Chromium: opened from a temp folder with every
network request refused, it must draw without console errors, show in every lens cell
the top-1 token Python's lens computes, show the same top 5 (to 3 decimals) on hover,
show a head's pattern when it is clicked, and in --serve mode answer a typed input.

The browser is Debian's `chromium`, driven by Playwright (the `dev` extra). Where neither
can be had the tests skip with one line; in CI (CI=true), which installs both, they fail
instead, so they can't silently stop running.
"""

from __future__ import annotations

import os
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minitf.explore.browser import browser_page, find_chromium, open_page, screenshot
from minitf.explore.page import write_page
from minitf.lens import logit_lens
from minitf.model import forward
from minitf.tasks import addition, config_for
from minitf.tokens import display_token
from minitf.tuned_lens import train_tuned_lens, tuned_lens


def _need(what: str, missing: bool, fix: str) -> None:
    if missing:
        message = f"{what} is not installed ({fix}), so the browser tests can't run"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser tests: {message}")
        pytest.skip(message, allow_module_level=True)


try:
    import playwright  # noqa: F401
except ImportError:
    _need("playwright", True, 'pip install -e ".[dev]"')
_need("Chromium", find_chromium() is None, "apt-get install chromium")

TASK = addition(2)
SPEC = {"name": TASK.name, **TASK.spec}
CONFIG = config_for(TASK, n_layer=2, n_head=2, d_model=32, d_mlp=64)
TOK = TASK.tokenizer
INPUTS = ["12+34=", "99+01=", "7+", "5+5=10"]
PROMPTS = {"12+34=", "99+01=", "45+67="}  # whole prompts: the page adds the model's answer


@pytest.fixture(scope="module")
def model():
    """A briefly trained 2-digit addition model and a tuned lens for it."""
    from minitf.train import train

    run = train(CONFIG, TASK, steps=150, batch_size=32, lr=1e-2, seed=0, progress=False)
    params = jax.tree.map(jnp.asarray, jax.device_get(run.params))
    sequences, _ = TASK.batch(np.random.default_rng(0), 256)
    tuned, _ = train_tuned_lens(params, CONFIG, sequences, steps=50)
    return params, tuned


@pytest.fixture(scope="module")
def page_file(model, tmp_path_factory):
    params, tuned = model
    folder = tmp_path_factory.mktemp("explore-page")  # a temp folder, opened as file://
    return write_page(folder / "explore.html", params, CONFIG, TOK, INPUTS, task=SPEC, tuned=tuned)


@pytest.fixture(scope="module")
def browser():
    with browser_page() as page:
        yield page


@pytest.fixture
def page(browser, page_file):
    browser.minitf_errors.clear()
    browser.minitf_blocked.clear()
    open_page(browser, page_file.as_uri())
    yield browser
    assert browser.minitf_errors == [], "the page logged errors"
    assert browser.minitf_blocked == [], "the page tried to use the network"


def shown_ids(params, text: str) -> list[int]:
    """The tokens the page looks at for `text`: a whole prompt gets the model's answer."""
    ids = TOK.encode(text)
    if text in PROMPTS:
        ids += TASK.predict(params, CONFIG, np.array([ids]))[0].tolist()
    return ids


def grid_cells(page) -> dict[tuple[int, int], str]:
    """{(lens row, position): the text the cell shows}."""
    cells = page.eval_on_selector_all(
        "#lens-grid td.cell", "cs => cs.map(c => [+c.dataset.row, +c.dataset.pos, c.textContent])")
    return {(row, t): text for row, t, text in cells}


def assert_grid_is_the_python_lens(page, lens, tokenizer=TOK) -> None:
    n_rows, T, _ = lens.log_probs.shape
    cells = grid_cells(page)
    assert len(cells) == n_rows * T
    top1 = lens.log_probs.argmax(axis=-1)  # (L+1, T)
    for row in range(n_rows):
        for t in range(T):
            ids, _ = lens.top_k(1, t)
            assert cells[row, t] == display_token(tokenizer, ids[row, 0]), (row, t)
            assert ids[row, 0] == top1[row, t]


def test_opens_offline_without_errors(page):
    assert page.title().startswith("minitf explore: addition")
    assert page.locator("#input-list button").count() == len(INPUTS)
    assert page.locator("#input-form").is_hidden()  # no server behind a file:// page
    assert "--serve" in page.inner_text("#static-hint")
    # every view drew something
    assert page.locator("#attention-thumbs button.thumb").count() == CONFIG.n_layer * CONFIG.n_head
    assert page.locator("#attribution-bars .dla-value").count() > 0
    assert page.locator("#embed-map .pt").count() == CONFIG.vocab_size


def test_every_lens_cell_is_the_python_lens(page, model):
    params, tuned = model
    for index, text in enumerate(INPUTS):
        page.click(f'#input-list button[data-index="{index}"]')
        ids = shown_ids(params, text)
        assert_grid_is_the_python_lens(page, logit_lens(params, CONFIG, ids))
        page.check('input[name="lens"][value="tuned"]')
        assert_grid_is_the_python_lens(page, tuned_lens(params, CONFIG, ids, tuned))
        page.check('input[name="lens"][value="logit"]')


def test_hover_shows_the_top_5_with_pythons_probabilities(page, model):
    params, _ = model
    ids = shown_ids(params, INPUTS[0])
    lens = logit_lens(params, CONFIG, ids)
    kl = lens.kl_to_final()
    for row, t in [(0, 0), (1, 5), (2, 5), (2, len(ids) - 1), (1, 3)]:
        page.hover(f'#lens-grid td.cell[data-row="{row}"][data-pos="{t}"]')
        tip = page.locator("#lens-tooltip")
        assert tip.is_visible()
        tokens = tip.locator(".tip-token").all_inner_texts()
        probs = [float(p) for p in tip.locator(".tip-prob").all_inner_texts()]
        top_ids, top_probs = lens.top_k(5, t)
        assert tokens == [display_token(TOK, i) for i in top_ids[row]]
        assert np.all(np.abs(np.array(probs) - top_probs[row]) <= 0.0005 + 1e-9)
        rank = lens.rank(top_ids[-1, 0], t)[row]
        assert f"ranks {rank + 1} here" in tip.locator(".tip-rank").inner_text()
        assert f"{kl[row, t]:.3f} nats" in tip.locator(".tip-kl").inner_text()
    page.mouse.move(0, 0)
    assert page.locator("#lens-tooltip").is_hidden()


def test_keyboard_moves_through_the_grid(page, model):
    params, _ = model
    lens = logit_lens(params, CONFIG, shown_ids(params, INPUTS[0]))
    page.focus('#lens-grid td.cell[tabindex="0"]')  # the selected cell: output row, at '='
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowLeft")  # block 0, position 4
    focused = page.evaluate("(e => [e.dataset.row, e.dataset.pos])(document.activeElement)")
    assert focused == ["1", "4"]
    top_ids, _ = lens.top_k(5, 4)
    assert page.locator(".tip-token").first.inner_text() == display_token(TOK, top_ids[1, 0])
    page.keyboard.press("Enter")  # select it: the other views follow
    assert page.get_attribute('#token-chips button[data-pos="4"]', "aria-pressed") == "true"
    assert page.evaluate("document.activeElement.dataset.pos") == "4"  # focus kept
    assert "position 4" in page.inner_text("#attribution-title")


def test_clicking_a_head_shows_its_pattern(page, model):
    params, _ = model
    ids = shown_ids(params, INPUTS[0])
    _, acts = forward(params, jnp.asarray([ids]), CONFIG, cache=True)
    for layer, head in [(1, 1), (0, 1)]:
        page.click(f'#attention-thumbs button[data-layer="{layer}"][data-head="{head}"]')
        assert page.inner_text("#attention-title").startswith(f"layer {layer}, head {head}")
        pattern = np.asarray(acts[f"blocks.{layer}.attn_pattern"][0, head])  # (T, T)
        cells = page.eval_on_selector_all(
            "#attention-large td",
            "cs => cs.map(c => [+c.dataset.q, +c.dataset.k, c.getAttribute('aria-label')])")
        assert len(cells) == len(ids) ** 2
        for q, k, text in cells:
            if k > q:
                assert text.endswith("masked (a later position)")
            else:
                assert abs(float(text.rsplit(": ", 1)[1]) - pattern[q, k]) <= 0.0005 + 1e-9
        # hovering a query shows, in numbers, the keys it attends to
        page.hover('#attention-large th.q[data-q="3"]')
        weights = page.locator("#attention-keys .key .w").all_inner_texts()
        assert [float(w) for w in weights[:4]] == pytest.approx(pattern[3, :4], abs=0.0005 + 1e-9)
        assert weights[4:] == ["—"] * (len(ids) - 4)


def test_selecting_a_token_updates_every_view(page, model):
    params, _ = model
    ids = shown_ids(params, INPUTS[0])
    page.click('#token-chips button[data-pos="2"]')
    assert page.locator("#lens-grid th.sel-col").inner_text() == display_token(TOK, ids[2])
    assert "position 2" in page.inner_text("#attribution-title")
    assert page.get_attribute("#embed-map .pt.sel", "data-id") == str(ids[2])
    lens = logit_lens(params, CONFIG, ids)
    predicted = int(lens.top_k(1, 2)[0][-1, 0])
    chosen = page.get_attribute("#attribution-candidates button[aria-pressed=true]", "data-id")
    assert chosen == str(predicted)
    # the bars are the library's attribution of the predicted token
    from minitf.attribution import direct_logit_attribution

    ref = direct_logit_attribution(params, CONFIG, ids, predicted, 2)
    shown = page.eval_on_selector_all("#attribution-bars .dla-value",
                                      "vs => vs.map(v => v.textContent.replace('\u2212', '-'))")
    assert [float(v) for v in shown] == pytest.approx(ref.values, abs=0.005 + 1e-6)
    # a head's bar opens that head's attention
    page.click('#attribution-bars button:text-is("1.attn.h0")')
    assert page.inner_text("#attention-title").startswith("layer 1, head 0")
    assert page.locator("#lens-grid tr.sel-row").get_attribute("data-row") == "2"


def test_serve_mode_answers_typed_input(browser, model):
    from minitf.explore.server import make_server

    params, tuned = model
    httpd = make_server(params, CONFIG, TOK, ["12+34="], task=SPEC, tuned=tuned, port=0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    browser.minitf_errors.clear()
    try:
        open_page(browser, f"http://127.0.0.1:{httpd.server_port}/")
        assert browser.locator("#input-form").is_visible()
        browser.fill("#input-text", "45+67=")
        browser.click("#input-run")
        browser.wait_for_selector('#input-list button[data-index="1"][aria-pressed=true]')
        ids = shown_ids(params, "45+67=")
        assert_grid_is_the_python_lens(browser, logit_lens(params, CONFIG, ids))
        assert browser.inner_text("#input-note").startswith("the model's answer:")
        for bad, message in [("4a+1", "not in this tokenizer's alphabet"),
                             ("", "the input is empty"), ("1234567890", "max_len=9; shorten it")]:
            browser.fill("#input-text", bad)
            browser.click("#input-run")
            browser.wait_for_function(
                "m => document.getElementById('input-message').textContent.includes(m)",
                arg=message)
            assert "\n" not in browser.inner_text("#input-message")
        assert browser.locator("#input-list button").count() == 2  # bad inputs add nothing
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert browser.minitf_errors == [] and browser.minitf_blocked == []


def test_screenshot_writes_a_png(browser, page_file, tmp_path):
    png = screenshot(page_file, tmp_path / "explore.png", page=browser)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def test_a_bpe_model_shows_readable_pieces(browser, tmp_path):
    """A text model without a task: inputs read as typed, BPE pieces with visible spaces."""
    from minitf.bpe import Tokenizer
    from minitf.model import Config, init_params

    tok = Tokenizer.train("the sea horse swims in the sea; the sea horse sleeps " * 20, 270,
                          pattern="gpt2")  # fmt: skip
    config = Config(vocab_size=tok.vocab_size, n_layer=1, n_head=2, d_model=16, d_mlp=32,
                    max_len=32)  # fmt: skip
    params = init_params(config, jax.random.key(0))
    path = write_page(tmp_path / "text.html", params, config, tok, ["the sea horse 🐠"])
    browser.minitf_errors.clear()
    open_page(browser, path.as_uri())
    ids = tok.encode("the sea horse 🐠")
    chips = browser.locator("#token-chips .chip .tok").all_inner_texts()
    assert chips == [display_token(tok, i) for i in ids] and "␣sea" in chips
    assert any("<0x" in c for c in chips)  # the fish's bytes, split across tokens
    assert browser.get_attribute("#token-chips button[aria-pressed=true]", "data-pos") == str(
        len(ids) - 1)  # no prompt: the last token is selected
    assert_grid_is_the_python_lens(browser, logit_lens(params, config, ids), tok)
    assert browser.minitf_errors == [] and browser.minitf_blocked == []
