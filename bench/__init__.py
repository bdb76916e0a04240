"""Benchmarks of vsm-ray, run with ``python -m bench NAME [--quick]`` (``--help`` lists them).

Each benchmark is a module with ``run(quick: bool) -> Report`` (see :mod:`bench._harness`),
registered in :data:`bench.__main__.BENCHMARKS`.
"""
