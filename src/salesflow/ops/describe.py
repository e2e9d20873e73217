"""What ``salesflow run`` says at start-up: what it watches and where, how it batches, and
where alerts go (URLs without their path, query or credentials)."""

from __future__ import annotations

from urllib.parse import urlsplit

from salesflow.config import Settings


def redact_url(url: str) -> str:
    """Scheme and host of ``url`` only: paths and queries of webhooks often hold secrets.

    >>> redact_url("https://user:pw@hooks.example.com/services/T0/B0/xyz?k=1")
    'https://hooks.example.com/…'
    """
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    rest = "/…" if parts.path.strip("/") or parts.query else "/"
    return f"{parts.scheme}://{host}{port}{rest}"


def _sink(settings: Settings, sink: str) -> str:
    alerts = settings.alerts
    if sink == "jsonl":
        return f"jsonl ({alerts.jsonl_path or settings.data_dir / 'alerts.jsonl'})"
    if sink == "webhook":
        return f"webhook ({redact_url(alerts.webhook_url)})" if alerts.webhook_url else "webhook"
    if sink == "smtp":
        to = len(alerts.smtp.recipients)
        return f"smtp ({alerts.smtp.host}:{alerts.smtp.port}, {to} recipient{'s' * (to != 1)})"
    if sink == "sns":
        return f"sns ({settings.aws.topic_arn or 'the stack topic'})"
    return sink


def startup_lines(settings: Settings) -> list[str]:
    """One line per fact, e.g. ``watching  salesflow-data/bucket/inbox (local)``."""
    if settings.backend == "local":
        watched = f"{(settings.bucket_dir / 'inbox').resolve()} (local folder)"
        state = f"{settings.data_dir.resolve()} (SQLite {settings.db_path.name}, Parquet lake)"
    else:
        where = settings.aws.bucket or f"the bucket of stack {settings.aws.stack_name}"
        watched = f"s3://{where}/inbox/ (aws)" if settings.aws.bucket else f"{where} inbox/ (aws)"
        state = f"stack {settings.aws.stack_name}" + (
            f" at {settings.aws.endpoint_url}" if settings.aws.endpoint_url else ""
        )
    rules = settings.batching
    minutes = rules.quiet_seconds / 60
    timer = f"{minutes:g} min" if minutes >= 1 else f"{rules.quiet_seconds:g} s"
    sinks = ", ".join(_sink(settings, s) for s in dict.fromkeys(settings.alerts.sinks))
    return [
        f"watching   {watched}",
        f"state      {state}",
        f"batching   {', '.join(rules.datasets)}: once one of each waits, at once with "
        f"{rules.min_files} files waiting, else {timer} after; every other dataset as it lands",
        f"alerts     amount > {settings.alerts.threshold:g} to {sinks or 'no sink'}",
    ]
