"""Sparkplug B edge nodes (docs/sparkplug.md): their messages become the router's numbered batches."""
