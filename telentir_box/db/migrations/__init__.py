"""Numbered SQL migrations, applied in order at start. Never edit one that has landed."""
