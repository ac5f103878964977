"""Observability: logs, Prometheus metrics, OpenTelemetry traces and the audit trail writer."""
