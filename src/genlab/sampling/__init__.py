"""Sampling from trained models and image grids."""
