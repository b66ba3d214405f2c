"""Broker security: per-identity MQTT credentials and the ACL, generated from the device registry.

``python -m broker credentials`` (see ``broker/README.md``). Library entry points:
:func:`broker.identities.load_identities`, :func:`broker.identities.plan` and
:func:`broker.credentials.generate`.
"""
