"""Starts the real components (PostgreSQL, Mosquitto) on free loopback ports, for the demo and the tests."""

from devstack.errors import ComponentError
from devstack.mosquitto import MosquittoServer
from devstack.ports import free_port
from devstack.postgres import PostgresServer

__all__ = ["ComponentError", "MosquittoServer", "PostgresServer", "free_port"]
