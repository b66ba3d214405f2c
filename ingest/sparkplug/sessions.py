"""Sparkplug B sessions in the control store: births, aliases, the durable numbering, online status.

A flush's Sparkplug messages are worked out in one control transaction, under each edge node's advisory lock
(the same lock the sequence claims take: replicas serialise per node), in arrival order:

- A message seen before (the SHA-256 of its topic and bytes is in ``sparkplug_messages``: a redelivery after a
  crash, a broker reconnection, a retry) gets the session and position it got the first time, and its aliases
  are resolved against the births of *that* session: the same rows again, which the stores ignore.
- NBIRTH opens a new session (numbered by the ingest) whose positions follow the node's highest position;
  NDEATH closes it if its ``bdSeq`` is the session's (a late Will of an earlier connection does not);
  DBIRTH / DDEATH set a device's status; NDATA / DDATA need their node's (and device's) birth in this session.
- A data-bearing message's ``seq`` (0-255) is placed at the relative position ``wraps * 256 + seq`` nearest
  to the node's last one (at most 128 ahead): its *position* is the session's base plus that. Positions are
  claimed as the node's batch seqs (``ingest.store.sequences.claim_all``, device ``spb:<group>/<node>``): a
  skipped seq opens a gap, which the node's next NBIRTH closes (``closed_by = 'rebirth'``).

The outcome per message is a :class:`Resolved`: its position and claim verdict with the metrics resolved to
(name, datatype, metric), or its refusal; and the nodes to ask for a Rebirth (gap, data before a birth, an
unknown alias).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ingest.store.connection import ENCODING_ERRORS, StoreConnection
from ingest.store.sequences import Claim, JumpBound, Verdict, claim_all
from wire.sparkplug import Metric, Payload, SparkplugTopic, bd_seq, is_control

# every node's lock in one statement, in sorted order (replicas cannot deadlock); claim_all takes them again
# (advisory locks are re-entrant within a transaction)
_LOCKS = "SELECT pg_advisory_xact_lock(hashtext('seq:' || n)) FROM unnest(%s::text[]) AS n ORDER BY n"
_NODES = (
    "SELECT node_key, session, bd_seq, base, last_rel, high, born_ms, online, state_reason FROM sparkplug_nodes"
    " WHERE node_key = ANY(%s)"
)
# %b: arrays sent in binary (the text form of a bytea array is escaped with regular expressions: costly)
_KNOWN = (
    "SELECT m.node_key, m.digest, m.session, m.position FROM unnest(%b::text[], %b::bytea[]) AS t(n, d)"
    " JOIN sparkplug_messages m ON m.node_key = t.n AND m.digest = t.d"
)
_BIRTHS = (
    "SELECT b.node_key, b.device, b.session, b.metrics, b.online FROM unnest(%s::text[], %s::bigint[])"
    " AS t(n, s) JOIN sparkplug_births b ON b.node_key = t.n AND b.session = t.s"
)
_UPSERT_NODES = (
    "INSERT INTO sparkplug_nodes (node_key, group_id, edge_node, session, bd_seq, base, last_rel, high, born_ms,"
    " online, state_at, state_reason) SELECT k, g, e, s, b, ba, l, h, m, o, now(), r FROM unnest(%s::text[],"
    " %s::text[], %s::text[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[],"
    " %s::bool[], %s::text[]) AS t(k, g, e, s, b, ba, l, h, m, o, r)"
    " ON CONFLICT (node_key) DO UPDATE SET session = EXCLUDED.session, bd_seq = EXCLUDED.bd_seq,"
    " base = EXCLUDED.base, last_rel = EXCLUDED.last_rel, high = EXCLUDED.high, born_ms = EXCLUDED.born_ms,"
    " online = EXCLUDED.online, state_at = CASE WHEN sparkplug_nodes.online IS DISTINCT FROM EXCLUDED.online"
    " OR sparkplug_nodes.session <> EXCLUDED.session THEN now() ELSE sparkplug_nodes.state_at END,"
    " state_reason = EXCLUDED.state_reason"
)
_UPSERT_BIRTH = (
    "INSERT INTO sparkplug_births (node_key, device, session, metrics, online) VALUES (%s, %s, %s, %s, %s)"
    " ON CONFLICT (node_key, device, session) DO UPDATE SET metrics = EXCLUDED.metrics, online = EXCLUDED.online,"
    " state_at = now()"
)
_OLDER_OFFLINE = (
    "UPDATE sparkplug_births SET online = false, state_at = now() WHERE node_key = %s AND session < %s AND online"
)
_MESSAGES = (
    "INSERT INTO sparkplug_messages (node_key, digest, session, position, device_id, topic)"
    " SELECT * FROM unnest(%b::text[], %b::bytea[], %b::bigint[], %b::bigint[], %b::text[], %b::text[])"
    " ON CONFLICT DO NOTHING"
)
_CLOSE_GAPS = (
    "UPDATE sequence_gaps SET closed_at = now(), closed_by = 'rebirth'"
    " WHERE device_id = %s AND closed_at IS NULL AND last_missing < %s"
)

WINDOW = 128
"""How far ahead of a node's last seq a message may be placed; anything else is placed behind it (a late or
redelivered message). Sparkplug's seq holds 256 values: a node more than 128 messages ahead of the ingest cannot
be told from one 128 behind."""


def message_digest(topic: str, payload: bytes) -> bytes:
    return hashlib.sha256(topic.encode() + b"\x00" + payload).digest()


@dataclass(slots=True)
class Incoming:
    """A decoded Sparkplug message of a registered edge node, in arrival order."""

    where: SparkplugTopic
    decoded: Payload
    digest: bytes
    device_id: str | None = None  # the registry device of the topic


@dataclass(slots=True)
class Resolved:
    session: int | None = None
    position: int | None = None
    verdict: Verdict | None = None  # the claim of its position (None: a message without one, NDEATH)
    metrics: list[tuple[str, int, Metric]] = field(default_factory=list)  # (name, datatype, metric): data
    problems: list[tuple[str, str]] = field(default_factory=list)  # (code, detail): parts not stored
    refused: tuple[str, str] | None = None  # (code, detail): nothing of it stored
    seen: bool = False  # a redelivery: the session and position it got the first time


@dataclass(slots=True)
class _Node:
    key: str
    group: str
    edge_node: str
    session: int
    bd_seq: int | None
    base: int
    last_rel: int
    high: int
    born_ms: int | None
    online: bool
    reason: str | None = None
    changed: bool = False


@dataclass
class Outcome:
    resolved: list[Resolved]
    rebirth: set[tuple[str, str]]  # (group, edge node): an unknown alias (the caller adds spb_no_birth's)
    statuses: list[tuple[str, str | None, bool]]  # (node key, device or None, online) changed by this flush
    gaps: set[tuple[str, str]] = field(default_factory=set)  # (group, edge node): a gap opened (checked later)


def _birth_doc(metrics: Sequence[Metric]) -> dict[str, Any]:
    names: dict[str, int] = {}
    aliases: dict[str, str] = {}
    for m in metrics:
        if m.name is None:
            continue
        names[m.name] = m.datatype if m.datatype is not None else 0
        if m.alias is not None:
            aliases[str(m.alias)] = m.name
    return {"names": names, "aliases": aliases}


def place(last_rel: int, seq: int) -> int:
    """The relative position ``k * 256 + seq`` nearest to ``last_rel``: up to WINDOW ahead, else behind."""
    ahead = (seq - last_rel) % 256
    candidate = last_rel + ahead
    return candidate if ahead <= WINDOW else candidate - 256


class SessionStore:
    """Works out a flush's Sparkplug messages (:meth:`process`) on its own control store connection."""

    def __init__(self, dsn: str, bound: JumpBound) -> None:
        self._store = StoreConnection("control", dsn)
        self.bound = bound

    def process(self, items: Sequence[Incoming]) -> Outcome:
        """One transaction; raises StoreUnavailableError (or StoreDataError)."""
        if not items:
            return Outcome([], set(), [], set())
        conn = self._store.get()
        try:
            with conn.transaction():
                return _process(conn, items, self.bound)
        except (psycopg.Error, *ENCODING_ERRORS) as exc:
            raise self._store.error(exc) from None

    def open_gaps(self, node_keys: Sequence[str]) -> set[str]:
        """The nodes (keys) among ``node_keys`` with an open gap; raises StoreUnavailableError."""
        conn = self._store.get()
        try:
            with conn.transaction():
                rows = conn.execute(
                    "SELECT DISTINCT device_id FROM sequence_gaps WHERE device_id = ANY(%s) AND closed_at IS NULL",
                    (list(node_keys),),
                ).fetchall()
        except (psycopg.Error, *ENCODING_ERRORS) as exc:
            raise self._store.error(exc) from None
        return {r[0] for r in rows}

    def close(self) -> None:
        self._store.close()


def _process(conn: psycopg.Connection, items: Sequence[Incoming], bound: JumpBound) -> Outcome:
    keys = sorted({i.where.node_key for i in items})
    with conn.cursor() as cur:
        cur.execute(_LOCKS, (keys,))
        cur.execute(_NODES, (keys,))
        nodes: dict[str, _Node] = {}
        for key, session, bd, base, last_rel, high, born_ms, online, reason in cur.fetchall():
            group, edge = key.removeprefix("spb:").split("/", 1)
            nodes[key] = _Node(key, group, edge, session, bd, base, last_rel, high, born_ms, online, reason)
        cur.execute(_KNOWN, ([i.where.node_key for i in items], [i.digest for i in items]))
        known = {(k, bytes(d)): (s, p) for k, d, s, p in cur.fetchall()}
        wanted = {(k, n.session) for k, n in nodes.items()} | {(k, s) for (k, _), (s, _) in known.items()}
        births: dict[tuple[str, str, int], tuple[dict[str, Any], bool]] = {}
        if wanted:
            cur.execute(_BIRTHS, ([k for k, _ in wanted], [s for _, s in wanted]))
            for key, device, session, metrics, online in cur.fetchall():
                births[(key, device, session)] = (metrics, online)

    resolved: list[Resolved] = []
    indexes: dict[int, _Index] = {}  # id(birth document) -> its index, built once per flush
    rebirth: set[tuple[str, str]] = set()
    gaps: set[tuple[str, str]] = set()
    messages: list[tuple[str, bytes, int, int | None, str | None, str]] = []
    birth_writes: dict[tuple[str, str, int], tuple[dict[str, Any], bool]] = {}
    new_sessions: dict[str, tuple[int, int]] = {}  # node -> (session, birth position): older births go offline
    statuses: list[tuple[str, str | None, bool]] = []

    for item in items:
        where, decoded = item.where, item.decoded
        key = where.node_key
        node = nodes.get(key)
        seen = known.get((key, item.digest))
        r = Resolved()
        resolved.append(r)
        if seen is not None:  # a redelivery: as the first time
            r.session, r.position = seen
            r.seen = True
            if where.type in ("NBIRTH", "DBIRTH"):
                r.metrics = _birth_metrics(decoded.metrics, r)
            elif where.type in ("NDATA", "DDATA"):
                birth = births.get((key, where.device or "", r.session))
                if birth is None:
                    r.refused = (
                        "spb_no_birth",
                        f"redelivered {where.type}: the birth of its session {r.session} is no longer known",
                    )
                else:
                    r.metrics = _resolve(decoded.metrics, _index(indexes, birth[0]), r)
            continue

        if where.type == "NBIRTH":
            seq = decoded.seq if decoded.seq is not None else 0
            if not 0 <= seq <= 255:
                r.refused = ("malformed", f"NBIRTH seq {seq} is outside 0-255")
                continue
            session = node.session + 1 if node else 1
            base = (node.high + 1 if node else 1) - seq
            node = nodes[key] = _Node(
                key,
                where.group,
                where.edge_node,
                session,
                bd_seq(decoded),
                base,
                seq,
                base + seq,
                decoded.timestamp,
                True,
                "NBIRTH",
                changed=True,
            )
            r.session, r.position = session, base + seq
            births[(key, "", session)] = birth_writes[(key, "", session)] = (_birth_doc(decoded.metrics), True)
            new_sessions[key] = (session, base + seq)
            statuses.append((key, None, True))
            r.metrics = _birth_metrics(decoded.metrics, r)
            messages.append((key, item.digest, session, r.position, item.device_id, str(where)))
            continue

        if where.type == "NDEATH":
            dead = bd_seq(decoded)
            if node is not None and node.online and (dead is None or node.bd_seq is None or dead == node.bd_seq):
                node.online, node.reason, node.changed = False, "NDEATH", True
                statuses.append((key, None, False))
                for (k, device, session), (doc, online) in list(births.items()):
                    if k == key and session == node.session and device and online:
                        births[(k, device, session)] = birth_writes[(k, device, session)] = (doc, False)
                        statuses.append((key, device, False))
                r.session = node.session
            # else: the Will of an earlier connection (another bdSeq), or a node already offline: no change
            messages.append((key, item.digest, node.session if node else 0, None, item.device_id, str(where)))
            continue

        # DBIRTH, NDATA, DDATA, DDEATH: within the node's current session
        if node is None or not node.online:
            r.refused = (
                "spb_no_birth",
                f"{where.type} of edge node {where.group}/{where.edge_node} before its "
                "NBIRTH (or after its NDEATH): a Rebirth was requested",
            )
            continue
        if (
            decoded.timestamp is not None
            and node.born_ms is not None
            and decoded.timestamp < node.born_ms
            and where.type != "DDEATH"
        ):
            r.refused = (
                "spb_stale_session",
                f"{where.type} dated {decoded.timestamp} ms, before the NBIRTH of the "
                f"node's current session ({node.born_ms} ms): it belongs to an earlier session whose "
                "aliases may differ; not stored",
            )
            continue
        sent_seq = decoded.seq
        if sent_seq is None or not 0 <= sent_seq <= 255:
            r.refused = ("malformed", f"{where.type} without a seq in 0-255 (seq={sent_seq})")
            continue
        rel = place(node.last_rel, sent_seq)
        if rel < 0:
            r.refused = (
                "spb_stale_session",
                f"{where.type} seq {sent_seq} falls before its session's birth (the "
                f"node's last seq is {node.last_rel % 256}): not stored",
            )
            continue
        if rel > node.last_rel + 1:
            gaps.add((where.group, where.edge_node))
        if rel > node.last_rel:
            node.last_rel = rel
        node.changed = True
        r.session, r.position = node.session, node.base + rel
        node.high = max(node.high, r.position)
        device = where.device or ""
        if where.type == "DBIRTH":
            births[(key, device, node.session)] = birth_writes[(key, device, node.session)] = (
                _birth_doc(decoded.metrics),
                True,
            )
            statuses.append((key, where.device, True))
            r.metrics = _birth_metrics(decoded.metrics, r)
        elif where.type == "DDEATH":
            birth = births.get((key, device, node.session))
            if birth is not None and birth[1]:
                births[(key, device, node.session)] = birth_writes[(key, device, node.session)] = (birth[0], False)
                statuses.append((key, where.device, False))
        else:  # NDATA, DDATA
            birth = births.get((key, device, node.session))
            if birth is None or not birth[1]:
                what = "device " + device if device else "edge node"
                r.refused = (
                    "spb_no_birth",
                    f"{where.type} of {what} of {where.group}/{where.edge_node} before its "
                    f"birth in session {node.session}: a Rebirth was requested",
                )
            else:
                r.metrics = _resolve(decoded.metrics, _index(indexes, birth[0]), r)
                if any(code == "spb_unknown_alias" for code, _ in r.problems):
                    rebirth.add((where.group, where.edge_node))
        messages.append((key, item.digest, node.session, r.position, item.device_id, str(where)))

    claims: list[Claim] = []
    claimed: list[Resolved] = []
    for item, r in zip(items, resolved, strict=True):
        if r.position is not None and r.refused is None:
            claims.append(Claim(item.where.node_key, r.position, max(1, len(r.metrics)), item.digest))
            claimed.append(r)
    changed = [n for n in nodes.values() if n.changed]
    with conn.cursor() as cur:
        if changed:
            cur.execute(
                _UPSERT_NODES,
                tuple(
                    list(col)
                    for col in zip(
                        *(
                            (
                                n.key,
                                n.group,
                                n.edge_node,
                                n.session,
                                n.bd_seq,
                                n.base,
                                n.last_rel,
                                n.high,
                                n.born_ms,
                                n.online,
                                n.reason,
                            )
                            for n in changed
                        ),
                        strict=True,
                    )
                ),
            )
        for key, (session, _) in new_sessions.items():
            cur.execute(_OLDER_OFFLINE, (key, session))
        for (key, device, session), (doc, online) in birth_writes.items():
            cur.execute(_UPSERT_BIRTH, (key, device, session, Jsonb(doc), online))
        if messages:
            cur.execute(_MESSAGES, tuple(list(col) for col in zip(*messages, strict=True)))
    verdicts = claim_all(conn, claims, bound)
    for r, verdict in zip(claimed, verdicts, strict=True):
        r.verdict = verdict
    if new_sessions:
        with conn.cursor() as cur:
            for key, (_, position) in new_sessions.items():
                cur.execute(_CLOSE_GAPS, (key, position))
    return Outcome(resolved, rebirth, statuses, gaps)


def _birth_metrics(metrics: Sequence[Metric], r: Resolved) -> list[tuple[str, int, Metric]]:
    """A birth's data metrics (its control metrics and bdSeq are not data)."""
    out = []
    for m in metrics:
        if m.name is None or m.datatype is None:
            r.problems.append(("malformed", f"a birth metric without a name or datatype (alias {m.alias})"))
            continue
        if not is_control(m.name) and not m.is_transient:
            out.append((m.name, m.datatype, m))
    return out


# A birth's index: alias -> (name, datatype, is a control metric), name -> (datatype, is a control metric)
_Index = tuple[dict[int, tuple[str, int, bool]], dict[str, tuple[int, bool]]]


def _index(cache: dict[int, _Index], birth: dict[str, Any]) -> _Index:
    found = cache.get(id(birth))
    if found is None:
        names = {name: (dt, is_control(name)) for name, dt in birth["names"].items()}
        aliases = {int(a): (name, *names.get(name, (0, is_control(name)))) for a, name in birth["aliases"].items()}
        found = cache[id(birth)] = (aliases, names)
    return found


def _resolve(metrics: Sequence[Metric], index: _Index, r: Resolved) -> list[tuple[str, int, Metric]]:
    """Data metrics resolved against their birth: an alias to its name, the datatype the birth declared."""
    aliases, names = index
    out = []
    unknown: list[str] = []
    for m in metrics:
        name = m.name
        if name is None:
            entry = aliases.get(m.alias) if m.alias is not None else None
            if entry is None:
                unknown.append(f"alias {m.alias}")
                continue
            name, datatype, control = entry
        else:
            known = names.get(name)
            if known is not None:
                datatype, control = known
            elif m.datatype is not None:
                datatype, control = m.datatype, is_control(name)
            else:
                unknown.append(repr(name))
                continue
        if control or m.is_transient:
            continue
        out.append((name, datatype, m))
    if unknown:
        r.problems.append(
            (
                "spb_unknown_alias",
                f"metrics {', '.join(unknown[:20])} were never declared by the "
                "birth of their session; not stored (a Rebirth was requested)",
            )
        )
    return out
