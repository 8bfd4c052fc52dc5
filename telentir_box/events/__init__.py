"""Event streams: the in-process bus fed by the committed event log, the SSE stream
(filters, resume, reset), stream tickets and retention pruning."""
