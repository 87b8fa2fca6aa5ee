"""Consolidating: figures aggregated up the hierarchy, reports rendered (in a pool of
processes) and addressed.
"""
