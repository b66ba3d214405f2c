"""Smoke test of the ingest benchmark: ``python -m bench.ingest --quick --json OUT`` runs end to end and
reports every metric. No timing assertions: numbers belong to the benchmark's report, not to tests."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

METRICS = [
    "b_copy_rows_per_s",
    "b_copy_text_rows_per_s",
    "b_copy_binary_rows_per_s",
    "b_copy_binary_parallel_rows_per_s",
    "b_raw_rows_per_s",
    "route_stage_rows_per_s",
    "route_stage_msgs_per_s",
    "writer_stage_rows_per_s",
    "writer_stage_serial_rows_per_s",
    "publisher_paho_100r_msgs_per_s",
    "publisher_c_100r_msgs_per_s",
    "publisher_paho_1r_msgs_per_s",
    "publisher_c_1r_msgs_per_s",
    "e2e_100_rows_per_s",
    "e2e_100_readings_per_s",
    "e2e_100_msgs_per_s",
    "bare_sub_1r_msgs_per_s",
    "minimal_1r_msgs_per_s",
    "e2e_1_msgs_per_s",
    "e2e_1_rows_per_s",
    "g5_rows_per_s",
    "g5_3_rows_per_s",
    "replicas_1_cpu_s_per_1000_readings",
    "g5_cpu_s_per_1000_readings",
    "g5_3_cpu_s_per_1000_readings",
    "g3p_one_process_ratio",
    "g7_one_process_ratio",
    "g7_ingest_cpu_s_per_1000",
    "g7_minimal_cpu_s_per_1000",
    "g3_one_process_threads_us_per_msg",
    "latency_p99_ms",
    "latency_p50_ms",
    "latency_sql_p99_ms",
    "latency_rate_msgs_per_s",
    "g1_ratio",
    "g1_ratio_vs_b_raw",
    "g2_ratio",
    "g3p_ratio",
    "g3_ratio_vs_bare",
    "g7_ratio",
    "g5p_g5_ratio",
    "g5p_g5_3_ratio",
    "g6_ratio",
    "g3_ceiling",
    "g5_ceiling",
    "wal_bytes_per_row_g1",
    "wal_bytes_per_row_b_copy_binary_parallel",
    # two residency cells (C1, C2): the CN site's messages, one cell, then cn -> global
    "link_stage_route_us_per_msg",
    "link_stage_part_us_per_msg",
    "link_stage_receive_us_per_msg",
    "c1_one_cell_rows_per_s",
    "c1_one_cell_readings_per_s",
    "c1_one_cell_msgs_per_s",
    "two_cells_rows_per_s",
    "two_cells_readings_per_s",
    "two_cells_msgs_per_s",
    "two_cells_latency_remote_p50_ms",
    "two_cells_latency_remote_p99_ms",
    "two_cells_latency_home_p50_ms",
    "two_cells_latency_home_p99_ms",
    "two_cells_latency_remote_sql_p99_ms",
    "two_cells_latency_rate_msgs_per_s",
    "c1_ratio",
    "c1_ratio_vs_g1",
    "c1_readings_ratio_vs_g1",
    "c2_ratio",
    "c2_bound_ms",
    "wal_bytes_per_row_c1",
    # Sparkplug B (S1): DDATA with 10 metrics vs our JSON with the same 10 values
    "s1_json_msgs_per_s",
    "s1_sparkplug_msgs_per_s",
    "s1_json_cpu_us_per_msg",
    "s1_sparkplug_cpu_us_per_msg",
    "s1_ratio",
]
GOALS = {"G1", "G2", "G3'", "G7", "G5'", "G6", "C1", "C2", "S1"}


@pytest.mark.integration
@pytest.mark.timeout(480)  # a loaded CI machine: the run itself takes 1.5-3.5 min
def test_quick_benchmark_reports_every_metric(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.ingest",
            "--quick",
            "--json",
            str(out),
            "--pg-setting",
            "wal_buffers=16MB",
            "--g3-rounds",
            "2",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=460,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}"
    # progress on stderr: phase names and counters
    assert "[1/11] setup" in proc.stderr
    assert "G6:" in proc.stderr
    assert "[10/11] C1/C2: two cells (cn -> global)" in proc.stderr
    assert "[11/11] S1: Sparkplug B DDATA" in proc.stderr
    assert "messages stored by cell cn;" in proc.stderr and "parts by cell global" in proc.stderr
    # the report on stdout: one line per goal with its verdict, and the machine
    for goal in GOALS:
        assert any(line.startswith(goal) and ("PASS" in line or "MISS" in line) for line in proc.stdout.splitlines())
    assert "machine:" in proc.stdout and "versions:" in proc.stdout
    assert "G3 ceiling" in proc.stdout and "G5 ceiling" in proc.stdout
    assert "PostgreSQL during the timed windows" in proc.stdout

    doc = json.loads(out.read_text())
    metrics = doc["metrics"]
    missing = [m for m in METRICS if m not in metrics]
    assert not missing, f"metrics missing from the JSON: {missing}"
    bad = {
        m: metrics[m]
        for m in METRICS
        if not (isinstance(metrics[m], float) and math.isfinite(metrics[m]) and metrics[m] > 0)
    }
    assert not bad, f"metrics that are not positive numbers: {bad}"
    assert {g["id"] for g in doc["goals"]} == GOALS
    for goal in doc["goals"]:
        assert goal["ratio"] > 0 and goal["baseline"] > 0 and isinstance(goal["pass"], bool)
    assert doc["machine"]["nproc"] >= 1 and doc["machine"]["cpu_model"]
    assert doc["workload"]["rows_100"] > 0
    assert doc["settings"]["postgresql"]["wal_buffers"] == "16MB"  # --pg-setting reached the server's settings
    assert set(doc["details"]["background_cpu"]) >= {
        "g1",
        "g3",
        "g5_one",
        "g5",
        "g5_3",
        "g6",
        "bare_sub",
        "minimal",
        "c1_one_cell",
        "c1",
        "c2",
        "s1_json",
        "s1_sparkplug",
    }
    # G3' and G7 from two rounds, each with its own windows; the goals are the medians of the rounds' ratios
    g3 = doc["details"]["g3"]
    assert len(g3["rounds"]) == 2 and {"minimal_r2", "g3_r2"} <= set(doc["details"]["background_cpu"])
    ratios = [r["g3p_ratio"] for r in g3["rounds"]]
    assert metrics["g3p_ratio"] == pytest.approx(sum(ratios) / 2)  # the median of two is their mean
    # G5' against a one-replica window of its own round (one round with --quick)
    g5 = doc["details"]["g5"]
    assert len(g5["rounds"]) == 1 and "g5_one" in doc["details"]["background_cpu"]
    assert metrics["g5p_g5_ratio"] == pytest.approx(
        g5["g5"]["cpu_s_per_1000_readings"] / g5["g5_one"]["cpu_s_per_1000_readings"]
    )
    # pg_stat_statements names each watched window's most expensive statements
    assert "most expensive statements" in proc.stdout
    statements = doc["details"]["postgres"]["statements"]
    assert any(s["query"].startswith("COPY") for s in statements["g1"]["top"]), statements["g1"]
    # the one process's CPU by thread, named by the ingest (ingest.thread_names)
    assert {"ingest-flush", "paho", "ingest-region", "ingest-control"} <= set(g3["one_process_threads_us_per_msg"])
    # C1 counts the same rows in both runs: every row of the CN messages in cn-north, their machine rows in us-east
    c1 = doc["details"]["c1"]
    assert set(c1["rows"]) == {"cn-north", "us-east"} and 0 < c1["rows"]["us-east"] < c1["rows"]["cn-north"]
    assert c1["remote_done_s"] > 0 and c1["link"]["sent"] >= c1["messages"]
    c2 = doc["details"]["c2"]
    assert c2["samples"]["us-east"] == c2["samples"]["cn-north"] == c2["messages"]  # every message, both regions


@pytest.mark.parametrize("bad", ["wal_buffers", "=8MB", "wal_buffers=", "x; DROP=1"])
def test_a_bad_pg_setting_is_refused_by_name(bad: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.ingest", "--quick", "--pg-setting", bad],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "--pg-setting" in proc.stderr and "expected NAME=VALUE" in proc.stderr
