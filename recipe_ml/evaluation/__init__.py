"""Offline evaluation: the ranking metrics and the protocol that applies them to a fitted model."""
