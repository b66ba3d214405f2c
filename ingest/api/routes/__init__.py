"""One APIRouter per domain; ``ingest.api.app`` includes them."""
