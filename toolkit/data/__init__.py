"""toolkit.data."""
