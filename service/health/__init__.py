"""The operations endpoints: liveness, readiness and Prometheus metrics."""
