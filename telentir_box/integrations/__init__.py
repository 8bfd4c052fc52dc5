"""Integrations: OAuth connections to Google Calendar, HubSpot, Salesforce and
Microsoft Teams, and the deliveries each makes after a call, through a durable outbox."""
