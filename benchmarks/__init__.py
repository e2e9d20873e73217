"""``make bench``: salesflow against seed 004's pandas approach and a plain Polars floor.

``python -m benchmarks.run`` generates (and caches under ``benchmarks/data/``) thelook data
at several sizes, times three approaches on the same files, each in a fresh subprocess,
checks that they agree on counts and KPIs, and writes ``benchmarks/results/``.
"""
