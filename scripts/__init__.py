"""Command-line entry points (training, evaluation, benchmarks)."""
