"""Measured transfer volumes: distinct data subjects whose personal data the ingest stored abroad, per (site,
region) and per legal window, fed into the policy input (docs/volumes.md)."""
