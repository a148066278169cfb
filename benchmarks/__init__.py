"""Benchmarks behind `make bench`: each `bench_*.py` module measures one part of the
pipeline on generated data and returns Measurements; the runner prints a table and
writes benchmarks/results.json."""
