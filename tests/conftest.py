"""Shared test setup: strict numpy rank promotion and the path to ../shared/data."""

from __future__ import annotations

from pathlib import Path

import jax
import pytest

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
