"""The runner services: one BentoML service per heavy model, scoring requests in adaptive batches."""
