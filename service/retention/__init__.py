"""Retention: expired tokens, stale login failures, old audit events and scans pruned in batches."""
