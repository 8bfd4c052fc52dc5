"""Calls: session calls, provider webhooks, and call records in the user's calls store."""
