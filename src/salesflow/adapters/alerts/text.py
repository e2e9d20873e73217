"""What an alert says, the same in every sink."""

from __future__ import annotations

from salesflow.models import Alert


def subject(alert: Alert) -> str:
    """``High value sale: 512.00 in sale_events (record E-42)``."""
    return f"High value sale: {alert.amount:.2f} in {alert.dataset} (record {alert.record_key})"


def body(alert: Alert) -> str:
    return (
        f"{alert.message}\n\n"
        f"amount:    {alert.amount:.2f} (threshold {alert.threshold:.2f})\n"
        f"dataset:   {alert.dataset}\n"
        f"record:    {alert.record_key}\n"
        f"file:      {alert.source_file}\n"
        f"alert id:  {alert.id}\n"
        f"raised at: {alert.created_at.isoformat()}\n"
    )
