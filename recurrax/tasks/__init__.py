"""Tasks: pure, key-driven, jit-able samplers and their metrics."""
