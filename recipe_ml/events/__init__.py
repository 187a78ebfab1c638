"""Interaction events: the contract with the producer and how they are applied."""
