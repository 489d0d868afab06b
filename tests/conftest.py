import os

import jax
import pytest

# Tests run on CPU in float32; hypothesis keeps example counts small (the suite has a budget).
jax.config.update("jax_platforms", "cpu")
os.environ.setdefault("HYPOTHESIS_PROFILE", "ci")

from hypothesis import settings  # noqa: E402

settings.register_profile("ci", max_examples=12, deadline=None)
settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])


@pytest.fixture
def key():
    return jax.random.key(0)
