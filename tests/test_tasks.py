"""Tasks: the loss mask covers exactly the answer, batches are reproducible, train and test
never share a problem, and greedy answers agree with a step-by-step reference."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from minitf.chars import CharTokenizer
from minitf.model import forward, init_params
from minitf.tasks import (
    TASKS,
    addition,
    config_for,
    copy,
    count_letters,
    exact_match,
    make_task,
    modular_addition,
)

SMALL = {
    "addition": {"digits": 2},
    "modular_addition": {"p": 11},
    "count_letters": {"max_word_len": 6},
    "copy": {"length": 3},
    "reverse": {"length": 3},
    "sort": {"length": 3},
}


@pytest.fixture(params=sorted(TASKS))
def task(request):
    return make_task(request.param, **SMALL[request.param])


def test_every_task_is_tested():
    assert set(SMALL) == set(TASKS)


def test_loss_mask_covers_exactly_the_answer(task):
    tokens, loss_mask = task.batch(np.random.default_rng(0), 16)
    P, A = task.prompt_len, task.answer_len
    assert tokens.shape == loss_mask.shape == (16, P + A)
    assert tokens.dtype == np.int32 and loss_mask.dtype == bool
    for row_tokens, row_mask in zip(tokens, loss_mask, strict=True):
        scored = np.flatnonzero(row_mask)  # positions whose NEXT token is scored
        assert scored.tolist() == list(range(P - 1, P + A - 1))
        # the tokens those positions predict are exactly the answer
        prompt = row_tokens[None, :P]
        np.testing.assert_array_equal(row_tokens[scored + 1], task.solve(prompt)[0])


def test_batches_are_deterministic_per_seed(task):
    a = task.batch(np.random.default_rng([3, 7]), 32)
    b = task.batch(np.random.default_rng([3, 7]), 32)
    c = task.batch(np.random.default_rng([3, 8]), 32)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])


def test_train_and_test_problems_never_overlap(task):
    train, _ = task.problems(np.random.default_rng(0), 3000, "train")
    test, _ = task.problems(np.random.default_rng(1), 300, "test")
    assert not task.is_test(train).any() and task.is_test(test).all()
    assert not {tuple(p) for p in train} & {tuple(p) for p in test}


@pytest.mark.parametrize(
    ("made", "prompt", "answer"),
    [
        (addition(3), "123+045=", "0168"),
        (addition(3, reverse_answer=True), "123+045=", "8610"),
        (addition(2), "99+99=", "198"),
        (modular_addition(23), "15+17=", "09"),
        (modular_addition(23, one_token=True), "f+h=", "9"),
        (count_letters(10, n_letters=6), "....abcaba:a=", "03"),
        (count_letters(9, n_letters=6), ".....fedd:c=", "0"),
        (make_task("copy", length=4), "4721=", "4721"),
        (make_task("reverse", length=4), "4721=", "1274"),
        (make_task("sort", length=4), "4721=", "1247"),
    ],
)
def test_hand_checked_answers(made, prompt, answer):
    assert made.answer(prompt) == answer
    assert len(prompt) == made.prompt_len and len(answer) == made.answer_len


def test_addition_covers_every_answer_width():
    prompts, answers = addition(2).problems(np.random.default_rng(0), 2000)
    text = addition(2).tokenizer.decode
    for p, a in zip(prompts[:50], answers[:50], strict=True):
        x, y = text(p)[:-1].split("+")
        assert int(text(a)) == int(x) + int(y)


def test_modular_addition_split_is_fixed_by_its_seed():
    a, b, c = modular_addition(11), modular_addition(11), modular_addition(11, split_seed=1)
    prompts = a.draw(np.random.default_rng(0), 500)
    np.testing.assert_array_equal(a.is_test(prompts), b.is_test(prompts))
    assert not np.array_equal(a.is_test(prompts), c.is_test(prompts))
    assert 0.3 < a.is_test(prompts).mean() < 0.7  # train_fraction 0.5


def test_modular_addition_one_token_ids_are_the_numbers():
    p = 113  # more residues than 0-9a-zA-Z: the symbols go on into Unicode letters
    digits, one = modular_addition(p), modular_addition(p, one_token=True)
    assert one.tokenizer.vocab_size == p + 2 and (one.prompt_len, one.answer_len) == (4, 1)
    prompts, answers = one.problems(np.random.default_rng(0), 500)
    a, b = prompts[:, 0], prompts[:, 2]
    np.testing.assert_array_equal(answers[:, 0], (a + b) % p)
    # the same pairs are held out as in the decimal version
    as_digits = np.stack([a // 100, a // 10 % 10, a % 10, np.full_like(a, 10),
                          b // 100, b // 10 % 10, b % 10, np.full_like(a, 11)], axis=1)
    np.testing.assert_array_equal(one.is_test(prompts), digits.is_test(as_digits))
    assert not one.is_test(prompts).any()  # problems() drew from the train split only


def test_unknown_task_and_bad_sizes_say_what_to_do():
    with pytest.raises(ValueError, match="choose one of"):
        make_task("division")
    with pytest.raises(ValueError, match="digits"):
        addition(0)
    never_test = dataclasses.replace(copy(3), is_test=lambda p: np.zeros(len(p), dtype=bool))
    with pytest.raises(ValueError, match="too small to split"):
        never_test.problems(np.random.default_rng(0), 10, "test")


def test_char_tokenizer_round_trip_and_errors():
    tok = CharTokenizer("0123456789+=")
    assert tok.decode(tok.encode("12+34=046")) == "12+34=046"
    assert tok.display(10) == "+" and tok.vocab_size == 12
    assert CharTokenizer.from_description(tok.describe()) == tok
    with pytest.raises(ValueError, match="not in this tokenizer's alphabet"):
        tok.encode("1-2")
    with pytest.raises(ValueError, match="repeats"):
        CharTokenizer("aa")


def test_predict_matches_a_step_by_step_reference():
    """Task.predict (sample.generate at temperature 0, with its KV cache) equals growing
    the sequence one argmax of the full forward pass at a time."""
    task = addition(2)
    config = config_for(task, n_layer=1, n_head=2, d_model=16, d_mlp=32)
    params = init_params(config, jax.random.key(0))
    prompts, _ = task.problems(np.random.default_rng(0), 8, "test")
    got = task.predict(params, config, prompts)
    tokens = prompts
    reference_forward = jax.jit(forward, static_argnums=2)
    for _ in range(task.answer_len):
        logits = reference_forward(params, tokens, config)  # (B, t, V)
        next_id = np.argmax(np.asarray(logits[:, -1]), axis=-1)  # (B,)
        tokens = np.concatenate([tokens, next_id[:, None]], axis=1)
    np.testing.assert_array_equal(got, tokens[:, task.prompt_len :])


def test_exact_match_needs_every_answer_token():
    answers = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9], [0, 0, 0]])
    predicted = np.array([[1, 2, 3], [4, 5, 0], [7, 8, 9], [0, 0, 1]])
    assert exact_match(predicted, answers) == 0.5


def test_evaluate_of_an_untrained_model_is_a_fraction():
    task = addition(1)
    config = config_for(task, n_layer=1, n_head=2, d_model=16, d_mlp=32)
    accuracy = task.evaluate(init_params(config, jax.random.key(0)), config, n=50)
    assert 0.0 <= accuracy <= 1.0


def test_evaluate_rejects_a_model_too_small_for_the_task():
    task = addition(3)
    config = config_for(addition(1), n_layer=1, n_head=2, d_model=16, d_mlp=32)
    # 123+456=0579 is 12 tokens; the model reads all but the last, which is only a target
    with pytest.raises(ValueError, match="max_len >= 11"):
        task.evaluate(init_params(config, jax.random.key(0)), config, n=5)


def test_docstring_examples_run():
    import doctest

    import minitf.chars

    assert doctest.testmod(minitf.chars).failed == 0
