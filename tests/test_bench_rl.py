"""``rmlite bench wrapper`` on a MuJoCo env, at a tiny size (the real run is in the README)."""

from __future__ import annotations

import pytest

from rmlite.bench import bench_wrapper


@pytest.mark.slow
def test_bench_wrapper_times_a_mujoco_env() -> None:
    lines: list[str] = []
    result = bench_wrapper(
        env="HalfCheetah-v5", num_envs=2, steps=20, repeats=1, episodes=3, max_steps=30,
        log=lines.append,
    )  # fmt: skip
    assert result["env"] == "HalfCheetah-v5" and result["target_ratio"] == 1.15
    assert result["reward_model_trees"] > 0
    assert result["plain_us_per_step"] > 0 and result["learned_us_per_step"] > 0
    assert result["ratio"] == pytest.approx(
        result["learned_us_per_step"] / result["plain_us_per_step"]
    )
    assert result["meets_target"] == (result["ratio"] <= 1.15)
    assert len(result["ratio_rounds"]) == len(result["cpu_ratio_rounds"]) == 1
    assert result["cpu_ratio"] == pytest.approx(
        result["cpu_learned_us_per_step"] / result["cpu_plain_us_per_step"]
    )
    assert lines[-1].startswith("HalfCheetah-v5, 2 envs:")
