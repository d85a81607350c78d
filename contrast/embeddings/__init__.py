"""What users do with embeddings: export them to files (sharded), read them back, and search them by
similarity."""
