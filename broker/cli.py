"""``python -m broker credentials``: the broker's dynamic-security file and per-identity secrets.

Exit codes: 0 written; 2 bad input (registry, identities file, option), naming the file and field;
1 the output cannot be written.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from broker.credentials import OwnerKey, generate_for_registry
from broker.errors import BrokerConfigError, CredentialsWriteError
from broker.identities import load_identities
from broker.registry_source import load_effective_registry
from ingest.errors import ConfigError, RegistryError

__all__ = ["app", "main"]

app = typer.Typer(
    name="broker",
    help="Broker security tools: MQTT credentials and ACLs generated from the device registry.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Broker security tools (a callback keeps ``credentials`` a named subcommand)."""


_OWNER = re.compile(r"^(broker|gateway|device|ingest)=(\d+):(\d+)$")


def _owners(values: list[str]) -> dict[OwnerKey, tuple[int, int]]:
    owners: dict[OwnerKey, tuple[int, int]] = {}
    for value in values:
        m = _OWNER.match(value)
        if m is None:
            raise BrokerConfigError(
                f"--owner: {value!r} must be KIND=UID:GID with KIND one of broker, gateway, device, ingest"
            )
        owners[m.group(1)] = (int(m.group(2)), int(m.group(3)))  # type: ignore[index]  # _OWNER admits only OwnerKey names
    return owners


@app.command()
def credentials(
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Output directory (broker/dynamic-security.json, identities/<name>/password)."
        ),
    ],
    registry: Annotated[Path, typer.Option("--registry", help="Device registry (YAML).", dir_okay=False)] = Path(
        "deploy/local/registry.yaml"
    ),
    identities: Annotated[
        Path, typer.Option("--identities", help="Gateways and ingest accounts (YAML).", dir_okay=False)
    ] = Path("deploy/local/broker-identities.yaml"),
    control_dsn: Annotated[
        str | None,
        typer.Option(
            "--control-dsn",
            envvar="BROKER_CONTROL_DSN",
            show_envvar=True,
            help="Control database: use the effective registry (the YAML overlaid with the sites "
            "and devices registered through the API).",
        ),
    ] = None,
    rotate: Annotated[
        list[str], typer.Option("--rotate", help="Issue a new secret for this identity (repeatable).")
    ] = [],  # noqa: B006
    owner: Annotated[
        list[str],
        typer.Option(
            "--owner",
            help="KIND=UID:GID: hand files to an account (broker: broker/; gateway, "
            "device, ingest: their secrets). Needs root. Repeatable.",
        ),
    ] = [],  # noqa: B006
    ca_file: Annotated[
        Path | None,
        typer.Option(
            "--ca-file", help="CA certificate (PEM) to put next to every secret and into broker/.", dir_okay=False
        ),
    ] = None,
    topology: Annotated[
        Path | None,
        typer.Option(
            "--topology",
            help="Residency cells (docs/cells.md): one directory per cell under --out, "
            "each with its broker's credentials (only its sites' gateways, peer bridge accounts) and "
            "broker/bridges.conf (its bridges to the cells it sends parts to).",
            dir_okay=False,
        ),
    ] = None,
    bridge_ca_file: Annotated[
        Path | None,
        typer.Option(
            "--bridge-ca-file",
            help="With --topology: the CA file the bridges verify their peers with, as "
            "the broker reads it (e.g. /mosquitto/security/ca.crt in its container); default: the "
            "generated <cell>/broker/ca.crt.",
            dir_okay=False,
        ),
    ] = None,
    show_secrets: Annotated[bool, typer.Option("--show-secrets", help="Also print every secret (careful).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only the summary line.")] = False,
) -> None:
    """Generate (or update) the broker's dynamic-security file and per-identity secrets from the registry.

    Existing secrets are kept, new identities added, decommissioned ones removed; --rotate NAME issues
    a new secret. Secrets are written to files (0600), not printed, unless --show-secrets.
    """
    if topology is not None:
        _cells(
            out,
            registry,
            identities,
            topology,
            control_dsn,
            ca_file,
            quiet,
            rotate=rotate,
            owner=owner,
            bridge_ca_file=bridge_ca_file,
        )
        return
    if bridge_ca_file is not None:
        typer.echo("error: --bridge-ca-file: only with --topology (the bridges are those of residency cells)", err=True)
        raise typer.Exit(2)
    try:
        loaded = load_effective_registry(registry, control_dsn)
        spec = load_identities(identities)
        report = generate_for_registry(
            loaded.registry,
            spec,
            out,
            source=str(identities),
            rotate=rotate,
            owners=_owners(owner),
            header=f"Identities {loaded.description} and {identities}.",
            keep_secrets=show_secrets,
            ca_file=ca_file,
        )
    except (RegistryError, BrokerConfigError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except CredentialsWriteError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if not quiet:
        status = dict.fromkeys(report.added, "added") | dict.fromkeys(report.rotated, "rotated")
        for ident in report.identities:
            topics = ", ".join(ident.writes or ident.subscribes)
            verb = "writes" if ident.writes else "subscribes"
            typer.echo(f"  {status.get(ident.name, 'kept'):7} {ident.kind:7} {ident.name}: {verb} {topics}")
        for name in report.removed:
            typer.echo(f"  removed         {name}")
    if loaded.revision is not None:
        typer.echo(f"registry: {registry} overlaid with the control database's entries (revision {loaded.revision})")
    typer.echo(report.summary())
    for name, secret in report.secrets.items():
        typer.echo(f"{name}\t{secret}")


def _rotations(values: list[str], topology: Path) -> dict[str, list[str]]:
    """``--rotate CELL/NAME`` values by cell (an identity name exists once per cell: ingest-1 in each)."""
    by_cell: dict[str, list[str]] = {}
    for value in values:
        cell, sep, name = value.partition("/")
        if not sep or not cell or not name:
            raise BrokerConfigError(
                f"--rotate: with --topology name the cell too: CELL/NAME (e.g. "
                f"cn/cn-shenzhen-gw-01), got {value!r}; cells are those of {topology}"
            )
        by_cell.setdefault(cell, []).append(name)
    return by_cell


def _cells(
    out: Path,
    registry: Path,
    identities: Path,
    topology: Path,
    control_dsn: str | None,
    ca_file: Path | None,
    quiet: bool,
    *,
    rotate: list[str],
    owner: list[str],
    bridge_ca_file: Path | None,
) -> None:
    from broker.cells import generate_cells
    from ingest.cells.topology import check_against_registry, load_topology

    try:
        loaded = load_effective_registry(registry, control_dsn)
        cells = load_topology(topology)
        check_against_registry(cells, loaded.registry, topology)
        reports = generate_cells(
            loaded.registry,
            load_identities(identities),
            cells,
            out,
            source=str(identities),
            ca_file=ca_file,
            bridge_ca_file=bridge_ca_file,
            rotate=_rotations(rotate, topology),
            owners=_owners(owner),
        )
    except (RegistryError, BrokerConfigError, ConfigError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except CredentialsWriteError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    for cell, report in reports.items():
        if not quiet:
            for ident in report.identities:
                typer.echo(f"  {cell:8} {ident.kind:7} {ident.name}: writes {', '.join(ident.writes) or '-'}")
        typer.echo(f"cell {cell}: {report.summary()}; bridges in {out / cell / 'broker' / 'bridges.conf'}")


def main() -> None:
    app()
