"""Frozen models and value objects shared by every transport."""
