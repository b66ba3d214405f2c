"""Region-store benchmark: a 24 h series at 1-minute buckets served from rollups vs computed from raw rows.

Run: ``.venv/bin/python -m bench.stores`` (``--help`` for options). See ``bench/stores/__main__.py``.
"""
