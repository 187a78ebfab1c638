"""The recommendation API without the web server: schemas, engine, metrics.

``service.py`` only parses HTTP and calls ``RecommendationEngine``; the
fallback chain, caching and live-interaction rules are testable here without
BentoML.
"""
