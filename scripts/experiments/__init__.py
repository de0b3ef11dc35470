"""Experiments run by ``scripts/reproduce.py NAME``: one module per experiment (see common.py)."""
