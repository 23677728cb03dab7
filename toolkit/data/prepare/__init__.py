"""toolkit.data.prepare."""
