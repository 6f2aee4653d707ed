"""Minari in and out keep the spaces as logged and carry infos and ``extra`` both ways."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import polars as pl
import pytest

from rmlite import LogStore
from rmlite.data import schema as S
from rmlite.exceptions import SchemaError
from rmlite.rl import collect, export_minari, import_minari

minari = pytest.importorskip("minari")

KEEP = [S.EPISODE, S.STEP, S.OBS, S.ACTION, S.REWARD, S.NEXT_OBS, S.TERMINATED, S.TRUNCATED]


@pytest.fixture
def minari_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


def test_discrete_actions_stay_discrete(minari_root: Path, store: LogStore) -> None:
    collect(store, "CartPole-v1", 5, "cartpole", num_envs=2, max_steps=20, seed=0)
    assert store.datasets().filter(pl.col("dataset") == "cartpole")["action_discrete"].item()
    logged = store.read("cartpole", KEEP)
    actions = np.asarray(logged[S.ACTION].to_list())[:, 0].astype(np.int64)

    for dataset_id, env_id in (("cp/plain-v0", None), ("cp/env-v0", "CartPole-v1")):
        export_minari(store, "cartpole", dataset_id, env_id=env_id)
        exported = minari.load_dataset(dataset_id)
        assert exported.action_space == gym.spaces.Discrete(2)
        if env_id is not None:  # the env's own bounds
            assert exported.observation_space == gym.make(env_id).observation_space
        episodes = list(exported.iterate_episodes())
        got = np.concatenate([ep.actions for ep in episodes])
        assert got.dtype.kind == "i" and got.ndim == 1
        np.testing.assert_array_equal(got, actions)
        # And back: the same transitions, still discrete.
        name = dataset_id.replace("/", "_")
        import_minari(store, dataset_id, name)
        assert store.read(name, KEEP).equals(logged)
        assert store.datasets().filter(pl.col("dataset") == name)["action_discrete"].item()


class CheetahInfos(gym.Wrapper[np.ndarray, np.ndarray, np.ndarray, np.ndarray]):
    """HalfCheetah with the same info keys from reset and step (Minari needs that): a
    scalar and a vector per step."""

    def reset(self, **kwargs):  # type: ignore[no-untyped-def]
        obs, info = self.env.reset(**kwargs)
        return obs, {"x_position": info["x_position"], "terms": np.zeros(2)}

    def step(self, action):  # type: ignore[no-untyped-def]
        obs, reward, terminated, truncated, info = self.env.step(action)
        terms = np.array([info["reward_forward"], info["reward_ctrl"]])
        return (
            obs,
            reward,
            terminated,
            truncated,
            {"x_position": info["x_position"], "terms": terms},
        )


def test_box_env_infos_round_trip(minari_root: Path, store: LogStore) -> None:
    cheetah = CheetahInfos(gym.make("HalfCheetah-v5", max_episode_steps=12))
    env = minari.DataCollector(cheetah, record_infos=True)
    env.action_space.seed(0)
    for i in range(3):
        env.reset(seed=i)
        done = False
        while not done:
            *_, terminated, truncated, _ = env.step(env.action_space.sample())
            done = terminated or truncated
    env.create_dataset("cheetah/random-v0", algorithm_name="random", author="rmlite tests",
                       author_email="tests@rmlite.invalid", code_permalink="https://example.invalid",
                       description="random HalfCheetah", eval_env="HalfCheetah-v5")  # fmt: skip
    env.close()
    source = minari.load_dataset("cheetah/random-v0")
    first = next(iter(source.iterate_episodes([0])))
    assert set(first.infos) == {"x_position", "terms"} and first.infos["terms"].shape == (13, 2)

    import_minari(store, "cheetah/random-v0", "cheetah")
    log = store.read("cheetah").filter(pl.col(S.EPISODE) == 0)
    extras = [json.loads(x) for x in log[S.EXTRA].to_list()]
    # Step t holds what step t returned (Minari's infos[t + 1]); step 0 also the reset's.
    np.testing.assert_allclose(
        [e["info"]["x_position"] for e in extras], first.infos["x_position"][1:]
    )
    assert extras[0]["reset_info"]["x_position"] == pytest.approx(first.infos["x_position"][0])
    assert extras[1]["reset_info"] is None

    export_minari(store, "cheetah", "cheetah/back-v0", env_id="HalfCheetah-v5")
    back = minari.load_dataset("cheetah/back-v0")
    assert back.action_space == source.action_space
    assert back.observation_space == source.observation_space
    for ours, theirs in zip(back.iterate_episodes(), source.iterate_episodes(), strict=True):
        assert set(ours.infos) == set(theirs.infos)
        for key in theirs.infos:
            np.testing.assert_allclose(ours.infos[key], theirs.infos[key], rtol=1e-6)
        np.testing.assert_allclose(ours.actions, theirs.actions, rtol=1e-6)
        np.testing.assert_allclose(ours.observations, theirs.observations, rtol=1e-6)


def test_extra_columns_become_infos(minari_root: Path, store: LogStore) -> None:
    n = 6
    log = pl.DataFrame(
        {
            S.EPISODE: [0] * n,
            S.STEP: list(range(n)),
            S.OBS: [[float(i), 0.0] for i in range(n)],
            S.ACTION: [i % 3 for i in range(n)],  # one integer column: discrete
            S.REWARD: [1.0] * n,
            S.NEXT_OBS: [[float(i + 1), 0.0] for i in range(n)],
            S.TERMINATED: [False] * (n - 1) + [True],
            S.TRUNCATED: [False] * n,
            "camera": [10 * i for i in range(n)],  # other columns land in `extra`
            "phase": ["a", "b", None, "d", "e", "f"],
        }
    )
    store.ingest(log, dataset="custom")
    export_minari(store, "custom", "custom/x-v0")
    exported = minari.load_dataset("custom/x-v0")
    assert exported.action_space == gym.spaces.Discrete(3)
    (episode,) = exported.iterate_episodes()
    np.testing.assert_array_equal(episode.actions, [0, 1, 2, 0, 1, 2])
    # infos[0] is the reset's, which this log never had: zeros; then one per step.
    np.testing.assert_array_equal(episode.infos["camera"], [0, 0, 10, 20, 30, 40, 50])
    assert list(episode.infos["phase"]) == ["", "a", "b", "", "d", "e", "f"]

    with pytest.raises(SchemaError, match=r"--env 'Pendulum-v1' observes \(3,\).*obs of 2"):
        export_minari(store, "custom", "custom/y-v0", env_id="Pendulum-v1")
