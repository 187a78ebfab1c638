"""Candidate retrieval: an approximate nearest-neighbour index of a model's recipes, and when to trust it.

Scoring a user against every recipe is linear in the catalogue. Above
``ANN_MIN_RECIPES`` the runners ask an inner-product index for a few hundred
candidates instead, then score and rank only those with the model and the one
ranking policy (``recipe_ml.ranking``). ``base`` holds the interface, the file
format and the checks that an index fits its model; ``usearch_index`` the
backend the project ships; ``candidates`` the policy that keeps recall under
filters (exact scoring over a small allowed set).
"""
