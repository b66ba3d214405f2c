"""Residency cells: one jurisdiction's broker, ingest, control store and region stores (docs/cells.md).

- :mod:`ingest.cells.topology`: which cells exist, what each hosts and serves; checked against the policy
- :mod:`ingest.cells.envelope`: a *part* (the rows one message sends to a region of another cell)
- :mod:`ingest.cells.outbox`: the durable outbox a cell writes parts to, in the same way as a region
- :mod:`ingest.cells.link`: ships the outbox over the cell's broker (bridged to the peer) and reads receipts
- :mod:`ingest.cells.receive`: checks a part that arrived, against this cell's registry and policy
"""
