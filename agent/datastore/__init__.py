"""datastore layer."""
