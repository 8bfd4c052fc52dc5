"""Scheduled jobs: recording retention, the daily and weekly report emails, their runs
(claimed once per period) and the scheduler that fires them."""
