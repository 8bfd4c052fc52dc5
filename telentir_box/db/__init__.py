"""Storage: the SQLite database, its migrations and the repositories (all SQL lives here)."""
