"""Identity and access: users, sessions, API keys, 2FA, phone verification, guards."""
