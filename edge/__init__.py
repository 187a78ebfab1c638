"""The BentoML edge: with ``service.py`` and ``runners/``, the only code that imports BentoML.

The domain package ``recipe_ml`` knows nothing of BentoML; this package holds
the glue around it: the HTTP routes and their error mapping, the runner
services seen as links of the fallback chain, and the model store.
"""
