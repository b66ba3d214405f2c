"""The ingest benchmark (issue 5): ``python -m bench.ingest [--quick] [--json OUT] [--profile DIR]``.

One command starts its own PostgreSQL and Mosquitto (devstack), generates one workload from the demo
registry's devices (simulated machines, as the edge agent sends them), measures the baselines and the
real ingest service (run as ``python -m ingest serve`` subprocesses) in the same run, and prints each
result with its baseline, the ratio and the target of docs/brief performance goals G1-G6.

Modules: ``workload`` (payloads and the router's rows), ``stack`` (servers, databases, ingest
processes), ``publish`` / ``subscriber`` (load generators, run as child processes), ``baselines``
(B_copy, B_raw, writer stage), ``latency`` (paced load, visibility poller), ``report`` (lines, JSON),
``prototypes`` (in-process measurements of proposed optimizations).
"""
