"""The BentoML edge: model store access and runners (BentoML is imported only here and in service.py)."""
