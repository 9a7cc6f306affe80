"""The white-box gradient membership inference attack and the scoring shared by every attack."""
