"""Admin-only endpoints beyond setup: GET /api/debug/db."""
