"""``rmlite bench scale``: the synthetic log it writes, and one tiny run end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import polars as pl
import pytest

from rmlite.bench.scale import EPISODE_LENGTH, write_log
from rmlite.data import schema as S


def test_write_log_writes_whole_episodes_in_blocks(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("rmlite.bench.scale.BLOCK_ROWS", 2_000)
    rows = write_log(tmp_path / "log.parquet", 4_500)
    log = pl.read_parquet(tmp_path / "log.parquet")
    assert rows == log.height == 5 * EPISODE_LENGTH
    lengths = log.group_by(S.EPISODE).len()["len"]
    assert lengths.n_unique() == 1 and lengths[0] == EPISODE_LENGTH
    assert log[S.EPISODE].n_unique() == 5
    # Blocks draw from their own seeds: no two episodes repeat each other.
    firsts = log.filter(pl.col(S.STEP) == 0)[S.REWARD]
    assert firsts.n_unique() == 5


@pytest.mark.slow
def test_bench_scale_runs_and_checks_its_targets(tmp_path) -> None:
    out = subprocess.run(
        [
            sys.executable, "-m", "rmlite.cli", "bench", "scale", "--rows", "3K,6K",
            "--workdir", str(tmp_path), "--backends", "lightgbm", "--no-fail", "--json",
        ],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert [row["rows"] for row in result["sizes"]] == [3_000, 6_000]
    small = result["sizes"][0]
    assert small["lightgbm_stream"]["streamed"] and not small["lightgbm_memory"]["streamed"]
    assert small["lightgbm_stream"]["holdout_r2"] == pytest.approx(
        small["lightgbm_memory"]["holdout_r2"], rel=1e-9
    )
    assert {"ingest_rss_growth", "stream_vs_memory_time"} <= set(result["checks"])
    assert all(row["ingest"]["peak_rss_bytes"] > 0 for row in result["sizes"])
