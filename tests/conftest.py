"""Shared test setup: faster compilation, strict numpy rank promotion, ../shared/data."""

from __future__ import annotations

from pathlib import Path

import jax
import pytest

from minitf.devices import setup_compilation

# the same -O2 code generation and disk cache as the CLI and the lessons: the suite is
# mostly JIT compilation
setup_compilation()

# silent broadcasting between arrays of different rank hides shape bugs: make it an error
jax.config.update("jax_numpy_rank_promotion", "raise")

# ../shared/data beside the checkout (CI has it; a user's machine may not)
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The shared data folder; skips the test where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present on this machine")
    return SHARED_DATA
