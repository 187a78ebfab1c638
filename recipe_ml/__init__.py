"""Recipe ML: the domain code of the recipe recommendation service.

Models, ranking, caching and interaction events live here and never import
BentoML, so they can be trained, tested and reused without a server. The
BentoML edges are ``service.py``, ``runners/`` and ``scripts/``.
"""

__version__ = "0.1.0"
