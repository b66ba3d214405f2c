"""The ingest service's HTTP API (FastAPI) and its live dashboard."""

from ingest.api.app import create_app
from ingest.api.config import ApiSettings

__all__ = ["ApiSettings", "create_app"]
