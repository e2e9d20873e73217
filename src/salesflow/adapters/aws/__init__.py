"""salesflow."""
