"""salesflow: an event-driven sales-data pipeline that runs on one machine or on AWS serverless."""

__version__ = "0.1.0"
