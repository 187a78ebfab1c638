"""The /api routes, one module per resource; ``deps`` holds what every route module shares."""
