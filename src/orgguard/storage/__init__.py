"""The database: its schema, and the store that reads and writes the policy."""
