"""Analysis tools: counters in cell states, gradient flow."""
