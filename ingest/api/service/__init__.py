"""Queries behind the routes: plain keyword-only functions that return response models."""
