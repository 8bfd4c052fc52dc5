"""Billing: plans, usage, Stripe Checkout and portal, Stripe webhooks, call enforcement."""
