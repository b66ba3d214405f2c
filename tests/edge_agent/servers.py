"""Protocol servers the source tests run against: pymodbus and asyncua, each on a free 127.0.0.1 port.

Each server runs on an asyncio loop of its own thread, so tests drive it synchronously (set values,
stop, restart on the same port).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from .edge_support import free_port

T = TypeVar("T")


class LoopThread:
    """An asyncio event loop on a daemon thread."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 20.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            self.run(cancel_all(), timeout=5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            if not self.loop.is_running():
                self.loop.close()  # its selector and self-pipe (else a ResourceWarning when collected)


class ModbusServer:
    """A pymodbus TCP server with 200 holding and 200 input registers (unit 1), all 0 at start."""

    def __init__(self) -> None:
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
        self.port = free_port()
        self._loop = LoopThread("modbus-server")
        self._server: Any = None

    def start(self) -> ModbusServer:
        from pymodbus.server import ModbusTcpServer
        from pymodbus.simulator import DataType, SimData, SimDevice

        bits = [SimData(0, count=16, values=False, datatype=DataType.BITS)]
        device = SimDevice(
            1,
            simdata=(
                bits,
                list(bits),
                [SimData(0, count=200, values=0, datatype=DataType.REGISTERS)],
                [SimData(0, count=200, values=0, datatype=DataType.REGISTERS)],
            ),
        )

        async def serve() -> Any:
            server = ModbusTcpServer(device, address=("127.0.0.1", self.port))
            await server.serve_forever(background=True)
            return server

        self._server = self._loop.run(serve())
        return self

    def set(self, table: str, address: int, registers: list[int]) -> None:
        """Write registers of ``table`` ("holding" or "input") directly into the datastore."""
        code = 16 if table == "holding" else 4
        self._loop.run(self._server.async_setValues(1, code, address, registers))

    def stop(self) -> None:
        if self._server is not None:
            self._loop.run(self._server.shutdown())
            self._server = None

    def close(self) -> None:
        self.stop()
        self._loop.close()


class OpcUaServer:
    """An asyncua server with one object ``Press`` holding a few variables (namespace index 2)."""

    URI = "urn:edge-agent-tests:opcua"

    def __init__(self, pki: Path | None = None) -> None:
        for name in ("asyncua", "asyncua.server", "asyncua.client"):
            logging.getLogger(name).setLevel(logging.ERROR)
        self.port = free_port()
        self.endpoint = f"opc.tcp://127.0.0.1:{self.port}/edge-tests/"
        self.pki = pki
        self._loop = LoopThread("opcua-server")
        self._server: Any = None
        self.vars: dict[str, Any] = {}
        self.ns = 2

    def start(self) -> OpcUaServer:
        self._loop.run(self._start(), timeout=60)
        return self

    async def _start(self) -> None:
        from asyncua import ua
        from asyncua.server.server import Server  # the class itself: asyncua does not re-export it explicitly

        server = Server()
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name("edge-agent test server")
        if self.pki is not None:
            await server.load_certificate(self.pki / "server-cert.der")
            await server.load_private_key(self.pki / "server-key.pem")
            await server.set_application_uri(self.URI)
            server.set_security_policy(
                [
                    ua.SecurityPolicyType.NoSecurity,
                    ua.SecurityPolicyType.Basic256Sha256_Sign,
                    ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
                ]
            )
        self.ns = await server.register_namespace(self.URI)
        press = await server.nodes.objects.add_object(self.ns, "Press")
        initial = {
            "BarrelTemp": ua.Variant(230.5, ua.VariantType.Double),
            "Cycles": ua.Variant(7, ua.VariantType.Int32),
            "Running": ua.Variant(True, ua.VariantType.Boolean),
            "Operator": ua.Variant("B-1001", ua.VariantType.String),
        }
        for name, value in initial.items():
            self.vars[name] = await press.add_variable(ua.NodeId.from_string(self.node_id(name)), name, value)
        await server.start()
        self._server = server

    def node_id(self, name: str) -> str:
        return f"ns={self.ns};s={name}"

    def write(self, name: str, value: Any) -> None:
        from asyncua import ua

        variant_type = {"BarrelTemp": ua.VariantType.Double, "Cycles": ua.VariantType.Int32}.get(name)
        variant = ua.Variant(value, variant_type) if variant_type else value
        self._loop.run(self.vars[name].write_value(variant))

    def stop(self) -> None:
        if self._server is not None:
            self._loop.run(self._server.stop())
            self._server = None

    def close(self) -> None:
        self.stop()
        self._loop.close()


async def _make_cert(key: Path, cert: Path, uri: str, usage: str) -> None:
    import socket

    from asyncua.crypto import cert_gen
    from cryptography.x509.oid import ExtendedKeyUsageOID

    eku = ExtendedKeyUsageOID.SERVER_AUTH if usage == "server" else ExtendedKeyUsageOID.CLIENT_AUTH
    await cert_gen.setup_self_signed_certificate(key, cert, uri, socket.gethostname(), [eku], {})


def make_opcua_pki(directory: Path, client_uri: str) -> dict[str, Path]:
    """Self-signed server and client application certificates (RSA 2048, DER) with PEM keys."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "server_cert": directory / "server-cert.der",
        "server_key": directory / "server-key.pem",
        "client_cert": directory / "client-cert.der",
        "client_key": directory / "client-key.pem",
    }
    asyncio.run(_make_cert(files["server_key"], files["server_cert"], OpcUaServer.URI, "server"))
    asyncio.run(_make_cert(files["client_key"], files["client_cert"], client_uri, "client"))
    return files
