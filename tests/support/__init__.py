"""Shared helpers for Trunkline's tests."""
