"""Fuzz harnesses for the SIP parser (see docs/fuzzing.md)."""
