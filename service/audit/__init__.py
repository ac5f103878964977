"""/api/audit-events: the audit trail, read by administrators (written by service/observability/audit.py)."""
