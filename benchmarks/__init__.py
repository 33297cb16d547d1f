"""Benchmarks of vigil-edge: speed, footprint, size, detection quality, reliability.

Not part of the test suite. Each module runs with one command from the repo root,
e.g. ``.venv/bin/python -m benchmarks.latency``, and writes
``benchmarks/results/<name>.json`` and ``<name>.md``. See ``benchmarks/README.md``.
"""
