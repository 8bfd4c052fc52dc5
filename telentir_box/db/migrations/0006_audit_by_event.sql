-- GET /api/audit filters the auth audit trail by event, newest first.
CREATE INDEX auth_audit_by_event ON auth_audit (event, id);
