"""Deployment files of the compose stack; ``compose_secrets`` is the one Python module (run by make)."""
