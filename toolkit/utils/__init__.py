"""Small shared helpers: logging, the allocator setting (malloc), process watching (process)."""
