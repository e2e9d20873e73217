"""Sample data generators: seeded, vectorized, with faults injected on demand.

Not needed at run time by the pipeline; the live-feed Lambda and ``salesflow generate`` use them.
"""
