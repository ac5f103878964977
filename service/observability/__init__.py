"""Observability: logs, Prometheus metrics and OpenTelemetry traces."""
