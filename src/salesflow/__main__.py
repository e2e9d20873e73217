"""``python -m salesflow``: the same as the ``salesflow`` console script."""

from salesflow.entrypoints.cli import main

main()
