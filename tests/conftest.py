import os

# Most of a small test's time is XLA compiling; LLVM's optimization level changes how fast the
# compiled code runs, not what it computes (comparisons in one test share the setting, and
# subprocesses inherit it). Set before jax is imported.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
).strip()

import jax  # noqa: E402
import pytest  # noqa: E402

# Tests run on CPU in float32; hypothesis keeps example counts small (the suite has a budget).
jax.config.update("jax_platforms", "cpu")
os.environ.setdefault("HYPOTHESIS_PROFILE", "ci")

from hypothesis import settings  # noqa: E402

settings.register_profile("ci", max_examples=12, deadline=None)
settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])


@pytest.fixture
def key():
    return jax.random.key(0)
