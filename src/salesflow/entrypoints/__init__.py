"""Entry points: the CLI, the Lambda handlers and the local service."""
