"""Clients of outside services, one folder each (the integrations convention)."""
