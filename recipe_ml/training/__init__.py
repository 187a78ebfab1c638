"""Training: build, fit and save every model kind of the registry; the CLI and the trainer service call this."""
