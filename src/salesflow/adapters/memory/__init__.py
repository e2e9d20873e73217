"""In-memory adapters: the smallest things that keep each port's contract, for fast unit tests.

The contract suites in ``tests/contract/`` run the same tests against these, the local
adapters and the AWS ones, so a fake never answers differently from the real thing.
"""
