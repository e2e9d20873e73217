"""What users do to the state: audit, dead-letter work, replay, summaries."""
