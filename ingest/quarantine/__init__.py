"""Quarantine: messages (or parts) the ingest may not store, from rejection to release, dismissal or expiry.

- :mod:`ingest.quarantine.placement`: where a quarantined payload may lawfully live (and the item's id); the
  router asks it for every rejection.
- :mod:`ingest.quarantine.service`: the lifecycle (release, dismiss, expire, payload views) and its errors.
- :mod:`ingest.quarantine.store`: all its SQL (control ``rejections``, region ``quarantine_payloads``).

The API (``ingest/api/routes/quarantine.py``) maps the service's errors to HTTP statuses. Design:
docs/quarantine.md.
"""
