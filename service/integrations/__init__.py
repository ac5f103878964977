"""Clients of outside services, one folder each (seed 001's convention)."""
