"""Small shared helpers (logging, seeding)."""
