"""Serving without the web server: request schemas, the engine (cache, live state, fallback chain), the ranker.

``edge.app`` only parses HTTP and calls ``RecommendationEngine``; the
fallback chain, caching and live-interaction rules are testable here without
BentoML.
"""
