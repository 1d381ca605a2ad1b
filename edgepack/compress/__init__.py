"""Compression beyond a precision: accuracy-aware search and distillation."""
