"""Generate the broker's dynamic-security configuration and per-identity secrets into one directory.

Layout of the output directory (one directory per consumer, so compose can mount each one alone)::

    broker/dynamic-security.json  the dynamic-security plugin's clients (PBKDF2-SHA512 hashes) and roles
                                (ACLs for publish, subscribe and delivery; :mod:`broker.dynsec`)
    broker/ca.crt               with ``ca_file``: the CA that clients' certificates chain to
    identities/<name>/password  the identity's secret (0600, directory 0700), to provision onto the
                                gateway or give the ingest replica; never printed unless asked
    identities/<name>/ca.crt    with ``ca_file``: the CA to verify the broker's certificate with

Idempotent: an existing secret is kept (and its hash too, when it still verifies, so the file is
byte-identical when nothing changed), new identities get a new random secret, identities that are gone
(a decommissioned device, a removed gateway) lose their directory and their entries. ``rotate`` issues
new secrets for the named identities. Files are replaced atomically (write + rename) so a broker
starting meanwhile never reads half a file. The ``passwd`` and ``acl`` files of earlier versions are
deleted from ``broker/`` (the plugin replaced them).
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from broker.dynsec import read_hashes, render_dynsec
from broker.errors import BrokerConfigError, CredentialsWriteError
from broker.identities import IdentitiesSpec, Identity, Kind, plan
from broker.password_hash import DEFAULT_ITERATIONS, PasswordHash, hash_password, verify_password
from ingest.registry import Registry

__all__ = [
    "BROKER_DIR",
    "DYNSEC_FILE",
    "IDENTITIES_DIR",
    "Owner",
    "OwnerKey",
    "Report",
    "generate",
    "generate_for_registry",
    "read_secret",
]

BROKER_DIR = "broker"
DYNSEC_FILE = "broker/dynamic-security.json"
LEGACY_FILES = ("broker/passwd", "broker/acl")  # password_file + acl_file, before the plugin
CA_FILE = "ca.crt"
IDENTITIES_DIR = "identities"
SECRET_FILE = "password"
SECRET_BYTES = 32  # 256-bit random secrets, URL-safe base64

Owner = tuple[int, int]  # uid, gid
OwnerKey = Literal["broker"] | Kind  # the dynamic-security file and ca.crt, or an identity kind's secret files


@dataclass(slots=True)
class Report:
    """What one generation did (names only: no secrets)."""

    out_dir: Path
    identities: list[Identity] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    rotated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)  # name -> secret, for --show-secrets only

    def summary(self) -> str:
        kinds: dict[str, int] = {}
        for ident in self.identities:
            kinds[ident.kind] = kinds.get(ident.kind, 0) + 1
        counts = ", ".join(f"{n} {k}{'s' if n != 1 else ''}" for k, n in sorted(kinds.items())) or "none"
        parts = [f"{len(self.identities)} identities ({counts}) in {self.out_dir}"]
        for label, names in (("added", self.added), ("rotated", self.rotated), ("removed", self.removed)):
            if names:
                parts.append(f"{label}: {', '.join(names)}")
        parts.append(f"kept: {len(self.kept)}")
        return "; ".join(parts)


def read_secret(path: Path) -> str:
    """A secret file's value (one line; surrounding whitespace stripped); errors name the file."""
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CredentialsWriteError(f"{path}: cannot read secret: {exc.strerror}") from None
    if not value or "\n" in value:
        raise CredentialsWriteError(f"{path}: a secret file must hold exactly one non-empty line")
    return value


def _write_atomic(path: Path, text: str, mode: int, owner: Owner | None) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        if owner is not None:
            os.chown(tmp, *owner)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise CredentialsWriteError(f"{path}: cannot write: {exc.strerror}") from None


def generate(
    identities: Sequence[Identity],
    out_dir: Path,
    *,
    rotate: Iterable[str] = (),
    owners: Mapping[OwnerKey, Owner] | None = None,
    iterations: int = DEFAULT_ITERATIONS,
    header: str = "",
    keep_secrets: bool = False,
    ca_file: Path | None = None,
) -> Report:
    """Write the dynamic-security file and the identities' secrets for ``identities`` (from
    :func:`broker.identities.plan`).

    ``owners`` maps ``"broker"`` (the dynamic-security file, ``ca.crt``) and each kind (``gateway``,
    ``device``, ``ingest``: its secret files) to a (uid, gid) to hand them to (needs root; used by
    the compose job). With ``keep_secrets`` the report carries the secrets (for ``--show-secrets``).
    ``ca_file`` (PEM) is copied next to every secret and into ``broker/``.
    """
    owners = dict(owners or {})
    names = [i.name for i in identities]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise BrokerConfigError(f"identity {dup!r} appears twice")
    to_rotate = set(rotate)
    unknown = sorted(to_rotate - set(names))
    if unknown:
        raise BrokerConfigError(
            f"--rotate: {', '.join(map(repr, unknown))} is not an identity (known: {', '.join(names)})"
        )

    ca_pem: str | None = None
    if ca_file is not None:
        try:
            ca_pem = ca_file.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise BrokerConfigError(f"{ca_file}: cannot read the CA certificate: {exc}") from None
        if "-----BEGIN CERTIFICATE-----" not in ca_pem:
            raise BrokerConfigError(f"{ca_file}: not a PEM certificate (no BEGIN CERTIFICATE line)")
    ids_dir = out_dir / IDENTITIES_DIR
    broker_owner = owners.get("broker")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        ids_dir.mkdir(mode=0o755, exist_ok=True)
        (out_dir / BROKER_DIR).mkdir(mode=0o755, exist_ok=True)
    except OSError as exc:
        raise CredentialsWriteError(f"{out_dir}: cannot create the output directory: {exc.strerror}") from None
    report = Report(out_dir=out_dir, identities=list(identities))
    old_hashes = read_hashes(out_dir / DYNSEC_FILE)
    hashes: dict[str, PasswordHash] = {}
    for ident in identities:
        own_dir = ids_dir / ident.name
        secret_file = own_dir / SECRET_FILE
        secret: str | None = None
        if secret_file.exists() and ident.name not in to_rotate:
            secret = read_secret(secret_file)
            report.kept.append(ident.name)
        else:
            (report.rotated if secret_file.exists() else report.added).append(ident.name)
        owner = owners.get(ident.kind)
        if secret is None:
            secret = secrets.token_urlsafe(SECRET_BYTES)
            try:
                own_dir.mkdir(mode=0o700, exist_ok=True)
                if owner is not None:
                    os.chown(own_dir, *owner)
            except OSError as exc:
                raise CredentialsWriteError(f"{own_dir}: cannot create: {exc.strerror}") from None
            _write_atomic(secret_file, secret + "\n", 0o600, owner)
        if ca_pem is not None:
            _write_atomic(own_dir / CA_FILE, ca_pem, 0o644, owner)
        old = old_hashes.get(ident.name)
        if old is None or not verify_password(secret, old):
            old = hash_password(secret, iterations=iterations)
        hashes[ident.name] = old
        if keep_secrets:
            report.secrets[ident.name] = secret

    if ca_pem is not None:
        _write_atomic(out_dir / BROKER_DIR / CA_FILE, ca_pem, 0o644, broker_owner)
    _write_atomic(out_dir / DYNSEC_FILE, render_dynsec(identities, hashes, header=header), 0o600, broker_owner)
    for legacy in LEGACY_FILES:
        (out_dir / legacy).unlink(missing_ok=True)

    wanted = set(names)
    for entry in sorted(ids_dir.iterdir()):
        if entry.name not in wanted and entry.is_dir() and (entry / SECRET_FILE).exists():
            shutil.rmtree(entry)
            report.removed.append(entry.name)
    return report


def generate_for_registry(
    registry: Registry,
    spec: IdentitiesSpec,
    out_dir: Path,
    *,
    source: str = "identities",
    **options: Any,
) -> Report:
    """:func:`plan` the identities of ``registry`` (the YAML file's or the effective one with devices
    registered through the API) and :func:`generate` their files; ``options`` as for :func:`generate`."""
    return generate(plan(registry, spec, source=source), out_dir, **options)
