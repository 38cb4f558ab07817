"""Benchmarks: each module with ``rows(quick)`` adds rows to one descend/torch ratio table (see run.py)."""
