"""Model registry, downloads, loading, and the tiny random-weight test set (output is noise)."""
