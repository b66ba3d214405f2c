"""Settings of the OPC UA source (pydantic only: importing this does not import asyncua)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from edge_agent.sources.base import SourceSettings

__all__ = ["OpcUaNode", "OpcUaSecurity", "OpcUaSettings", "SecurityMode", "SecurityPolicy"]

SecurityMode = Literal["None", "Sign", "SignAndEncrypt"]
SecurityPolicy = Literal["Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss"]
FieldName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OpcUaNode(_Model):
    """A variable to subscribe to."""

    node_id: str = Field(
        min_length=3, pattern=r"^(ns=\d+;)?[isgb]=.+$", description="Node id, e.g. ns=2;s=Press1.BarrelTemp or i=2258."
    )
    field: FieldName = Field(description="Field name in the readings (as declared in the device registry).")


class OpcUaSecurity(_Model):
    """Secure channel: mode, policy, and this client's application instance certificate."""

    mode: SecurityMode = Field(default="None", description="None, Sign or SignAndEncrypt.")
    policy: SecurityPolicy | None = Field(default=None, description="Basic256Sha256 (usual), or an Aes* policy.")
    certificate: Path | None = Field(default=None, description="Client certificate (DER or PEM).")
    private_key: Path | None = Field(default=None, description="Client private key (PEM or DER).")
    private_key_password: SecretStr | None = Field(default=None, description="Password of the private key, if any.")
    server_certificate: Path | None = Field(
        default=None,
        description="Pin the server certificate (DER or PEM). Without it the certificate the server presents "
        "is used as is (encrypted, but the server is not authenticated).",
    )
    application_uri: str = Field(
        default="urn:residency-telemetry:edge-agent",
        min_length=1,
        description="Application URI of this client; must match the URI in the client certificate.",
    )

    @field_validator("certificate", "private_key", "server_certificate")
    @classmethod
    def _exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"file not found: {value}")
        return value

    @model_validator(mode="after")
    def _complete(self) -> OpcUaSecurity:
        if self.mode == "None":
            extra = [n for n in ("policy", "certificate", "private_key", "server_certificate") if getattr(self, n)]
            if extra:
                raise ValueError(
                    f"mode None uses no security: remove {', '.join(extra)} or set mode Sign/SignAndEncrypt"
                )
            return self
        missing = [n for n in ("policy", "certificate", "private_key") if getattr(self, n) is None]
        if missing:
            raise ValueError(f"mode {self.mode} needs {', '.join(missing)}")
        return self


class OpcUaSettings(SourceSettings):
    """An OPC UA server; the source subscribes to data changes of the listed nodes."""

    type: Literal["opcua"] = Field(description="Source type.")
    endpoint: str = Field(pattern=r"^opc\.tcp://[^/\s]+", description="Endpoint URL, e.g. opc.tcp://10.0.0.5:4840.")
    username: str | None = Field(default=None, min_length=1, description="User name, if the server wants one.")
    password: SecretStr | None = Field(default=None, description="Password (needs username).")
    security: OpcUaSecurity = OpcUaSecurity()
    publishing_interval_ms: int = Field(
        default=1000, ge=10, le=3_600_000, description="How often the server sends the changes it collected."
    )
    sampling_interval_ms: int = Field(
        default=0, ge=0, le=3_600_000, description="How often the server samples each node (0: as fast as it can)."
    )
    queue_size: int = Field(
        default=10, ge=1, le=10_000, description="Changes the server keeps per node between two publishes."
    )
    timeout_s: float = Field(default=5.0, gt=0, le=300, description="Connect and request timeout.")
    nodes: list[OpcUaNode] = Field(min_length=1, max_length=1000, description="The variables to subscribe to.")

    @field_validator("nodes")
    @classmethod
    def _unique(cls, nodes: list[OpcUaNode]) -> list[OpcUaNode]:
        fields: dict[str, int] = {}
        ids: dict[str, int] = {}
        for i, node in enumerate(nodes):
            if node.field in fields:
                raise ValueError(f"field {node.field!r} is used by nodes {fields[node.field]} and {i}")
            if node.node_id in ids:
                raise ValueError(f"node {node.node_id!r} is listed twice ({ids[node.node_id]} and {i})")
            fields[node.field], ids[node.node_id] = i, i
        return nodes

    @model_validator(mode="after")
    def _credentials(self) -> OpcUaSettings:
        if self.password is not None and self.username is None:
            raise ValueError("password is set but username is not")
        return self
