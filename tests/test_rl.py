"""Closing the loop: collect from Gymnasium, relabel datasets, Minari in and out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from rmlite import FeatureSpec, LogStore
from rmlite.data import schema as S
from rmlite.exceptions import IngestError, ParameterError, RmliteError, SchemaError
from rmlite.pipeline import predict, train
from rmlite.rl import collect, collect_log, export_minari, import_minari, relabel
from rmlite.testing import rollout

SMALL = {
    "n_estimators": 60,
    "learning_rate": 0.2,
    "n_jobs": 1,
    "backend_params": {"num_leaves": 15},
}


def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None):
    return subprocess.run(
        [sys.executable, "-m", "rmlite.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def assert_well_formed(log: pl.DataFrame) -> None:
    """Steps consecutive from 0, one end per episode (its last step: terminated, truncated,
    or both when the env fails on the time limit's step), next_obs equal to the next step's
    obs within the episode."""
    for (_episode,), ep in log.group_by(S.EPISODE, maintain_order=True):
        n = ep.height
        assert ep[S.STEP].to_list() == list(range(n))
        done = (ep[S.TERMINATED] | ep[S.TRUNCATED]).to_list()
        assert done == [False] * (n - 1) + [True]
        obs = np.asarray(ep[S.OBS].to_list())
        nxt = np.asarray(ep[S.NEXT_OBS].to_list())
        np.testing.assert_array_equal(nxt[:-1], obs[1:])


# -------------------------------------------------------------------------- collect


def test_vectorized_collect_has_the_structure_of_a_single_env_rollout() -> None:
    # CartPole terminates (falls) and, capped at 30 steps, is sometimes truncated.
    vec = collect_log("CartPole-v1", 12, num_envs=4, max_steps=30, seed=1)
    single = rollout("CartPole-v1", episodes=12, max_steps=30, seed=1)
    assert vec.columns == single.columns and vec.schema == single.schema
    assert_well_formed(vec)
    assert_well_formed(single)
    assert sorted(vec[S.EPISODE].unique().to_list()) == list(range(12))
    ends = vec.group_by(S.EPISODE).agg(pl.col(S.TERMINATED).last(), pl.col(S.TRUNCATED).last())
    assert ends[S.TERMINATED].any() and ends[S.TRUNCATED].any()  # kept apart, both present
    # CartPole pays 1 per real step; a next-step autoreset step pays 0: none was recorded.
    assert (vec[S.REWARD] == 1.0).all()
    # Pendulum only truncates: every episode is exactly the time limit long.
    pend = collect_log("Pendulum-v1", 5, num_envs=3, max_steps=25, seed=0)
    assert_well_formed(pend)
    assert pend.height == 5 * 25 and pend[S.TRUNCATED].sum() == 5


def test_collect_is_seeded_idempotent_and_checked(store: LogStore) -> None:
    first = collect(store, "Pendulum-v1", 6, "pend", num_envs=4, max_steps=30, seed=3)
    assert first.ingest.rows_added == first.transitions == 180
    assert first.episodes_truncated == 6 and first.episodes_terminated == 0
    again = collect(store, "Pendulum-v1", 6, "pend", num_envs=4, max_steps=30, seed=3)
    assert again.ingest.rows_added == 0 and again.ingest.rows_duplicate == 180
    assert store.check("pend").problems == []
    other = collect_log("Pendulum-v1", 6, num_envs=4, max_steps=30, seed=4)
    assert not np.array_equal(
        np.asarray(other[S.OBS].to_list()), np.asarray(store.read("pend")[S.OBS].to_list())
    )


def test_collect_continues_after_the_largest_episode_id(store: LogStore) -> None:
    kw = {"num_envs": 2, "max_steps": 10, "seed": 0}
    lone = collect(store, "Pendulum-v1", 1, "one", episode_offset=None, **kw)
    assert lone.first_episode == 0  # a dataset holding episode 0 alone continues at 1:
    assert collect(store, "Pendulum-v1", 1, "one", episode_offset=None, **kw).first_episode == 1
    first = collect(store, "Pendulum-v1", 3, "pend", episode_offset=None, **kw)
    second = collect(store, "Pendulum-v1", 2, "pend", episode_offset=None, **kw)
    assert (first.first_episode, second.first_episode) == (0, 3)
    assert second.ingest.rows_added == 20 and "ids 3-4" in str(second)
    log = store.read("pend")
    assert log[S.EPISODE].unique().sort().to_list() == [0, 1, 2, 3, 4]
    # Fresh rollouts (seeded with seed + offset), not the first batch again under new ids.
    obs = {e: np.asarray(g[S.OBS].to_list()) for (e,), g in log.group_by(S.EPISODE)}
    assert not any(np.array_equal(obs[3], obs[e]) for e in (0, 1, 2))
    # The same seed and offset are the same episodes: collecting them again adds nothing.
    again = collect(store, "Pendulum-v1", 2, "pend", episode_offset=3, **kw)
    assert again.ingest.rows_added == 0 and again.ingest.rows_duplicate == 20
    assert store.check("pend").problems == []
    with pytest.raises(ParameterError, match=r"--episode-offset must be an int >= 0.*-1"):
        collect(store, "Pendulum-v1", 2, "pend", episode_offset=-1, **kw)


def test_collect_cannot_continue_text_episode_ids(store: LogStore) -> None:
    named = rollout("Pendulum-v1", episodes=2, max_steps=5).with_columns(
        pl.format("run-a/ep-{}", pl.col(S.EPISODE)).alias(S.EPISODE)
    )
    store.ingest(named, dataset="runs")
    before = store.fingerprint("runs")
    with pytest.raises(
        ParameterError, match=r"'runs' names its episodes by text.*--episode-offset"
    ):
        collect(store, "Pendulum-v1", 2, "runs", max_steps=5, episode_offset=None)
    assert store.fingerprint("runs") == before


@pytest.mark.slow
def test_cli_collect_feeds_new_episodes_to_monitor(tmp_path: Path) -> None:
    db, model = str(tmp_path / "s.duckdb"), str(tmp_path / "model")
    collect_args = ("collect", "--db", db, "--env", "Pendulum-v1", "--dataset", "pend")
    collect_args += ("--max-steps", "30", "--num-envs", "4", "--json")
    first = json.loads(run(*collect_args, "--episodes", "10").stdout)
    assert first["first_episode"] == 0 and first["ingest"]["rows_added"] == 300
    trained = run("train", "--db", db, "--dataset", "pend", "--out", model, "--n-estimators",
                  "30", "--n-jobs", "1", "--json")  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    watch = ("monitor", "--db", db, "--model", model, "--dataset", "pend", "--json")
    pass1 = json.loads(run(*watch).stdout)
    assert pass1["pass_id"] == 1 and pass1["episodes"] == 2  # the held-out 20%

    done = run(*collect_args, "--episodes", "4")  # same --seed 0: fresh episodes 10-13
    assert done.returncode == 0, done.stderr
    second = json.loads(done.stdout)
    assert second["first_episode"] == 10 and second["ingest"]["rows_added"] == 120
    pass2 = json.loads(run(*watch).stdout)
    assert pass2["pass_id"] == 2 and pass2["episodes"] == 4
    assert pass2["first_ingest_id"] > pass1["last_ingest_id"]

    # An explicit offset repeats a batch exactly: nothing new lands, nothing new to monitor.
    same = json.loads(run(*collect_args, "--episodes", "4", "--episode-offset", "10").stdout)
    assert same["ingest"]["rows_added"] == 0
    assert json.loads(run(*watch).stdout)["pass_id"] is None
    bad = run(*collect_args, "--episodes", "4", "--episode-offset", "-3")
    assert bad.returncode == 2 and "--episode-offset" in bad.stderr


def test_collect_with_a_policy_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "still_policy.py").write_text(
        textwrap.dedent(
            """
            import numpy as np

            def act(obs, rng):
                return np.zeros((len(obs), 1), dtype=np.float32)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    log = collect_log("Pendulum-v1", 2, policy="still_policy:act", max_steps=10)
    assert (np.asarray(log[S.ACTION].to_list()) == 0).all()
    with pytest.raises(ParameterError, match="expected 'random' or 'module:callable'"):
        collect_log("Pendulum-v1", 1, policy="nonsense")
    with pytest.raises(ParameterError, match="cannot import 'no_such_module'"):
        collect_log("Pendulum-v1", 1, policy="no_such_module:act")
    with pytest.raises(ParameterError, match="has no callable 'missing'"):
        collect_log("Pendulum-v1", 1, policy="still_policy:missing")


def test_collect_refuses_bad_arguments() -> None:
    with pytest.raises(ParameterError, match="did you mean 'Pendulum-v1'"):
        collect_log("Pendulum-v2", 1)
    with pytest.raises(ParameterError, match="--episodes must be a positive int"):
        collect_log("Pendulum-v1", 0)
    with pytest.raises(ParameterError, match="--num-envs must be a positive int"):
        collect_log("Pendulum-v1", 2, num_envs=0)


# -------------------------------------------------------------------------- relabel


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[LogStore, Path]:
    root = tmp_path_factory.mktemp("relabel")
    store = LogStore(root / "store.duckdb")
    collect(store, "Pendulum-v1", 12, "pend", max_steps=50, seed=0)
    collect(store, "Pendulum-v1", 4, "pend-new", max_steps=50, seed=1)
    train(store, "pend", FeatureSpec(next_obs=True), SMALL, out=root / "model")
    return store, root / "model"


def test_relabel_writes_a_new_dataset_and_leaves_the_source_untouched(
    trained: tuple[LogStore, Path],
) -> None:
    store, model = trained
    before = store.read("pend-new")
    fingerprint = store.fingerprint("pend-new")
    report = relabel(store, model, "pend-new", "pend-new-learned")
    assert store.read("pend-new").equals(before)
    assert store.fingerprint("pend-new") == fingerprint

    new = store.read("pend-new-learned")
    assert report.rows == report.rows_predicted == new.height == before.height == 200
    for col in (S.EPISODE, S.STEP, S.OBS, S.ACTION, S.NEXT_OBS, S.TERMINATED, S.TRUNCATED):
        assert new[col].equals(before[col]), col
    expected = predict(store, model, "pend-new")
    np.testing.assert_allclose(new[S.REWARD].to_numpy(), expected["prediction"].to_numpy())
    assert np.corrcoef(new[S.REWARD].to_numpy(), before[S.REWARD].to_numpy())[0, 1] > 0.95

    row = store.relabels("pend-new-learned").row(-1, named=True)
    assert row["relabel_id"] == report.relabel_id and row["source_dataset"] == "pend-new"
    assert row["source_fingerprint"] == fingerprint and row["destination_kind"] == "dataset"
    assert row["model_path"] == str(model.resolve()) and row["gamma"] == pytest.approx(0.99)
    assert row["model_fingerprint"] == report.provenance["model_fingerprint"]
    assert json.loads(row["feature_spec"]) == FeatureSpec(next_obs=True).to_dict()
    assert row["created_at"] is not None
    ingest = store.sql("SELECT * FROM ingests WHERE ingest_id = $id", {"id": row["ingest_id"]}).row(
        0, named=True
    )
    assert ingest["dataset"] == "pend-new-learned" and ingest["rows_added"] == 200
    assert store.check("pend-new-learned").problems == []


def test_relabel_to_parquet_with_rescaling(trained: tuple[LogStore, Path], tmp_path: Path) -> None:
    store, model = trained
    out = tmp_path / "learned.parquet"
    report = relabel(store, model, "pend-new", out, rescale=(0.0, 1.0))
    table = pq.read_table(out)
    provenance = json.loads(table.schema.metadata[b"rmlite.relabel"])
    assert provenance["source_dataset"] == "pend-new" and provenance["rescale"]["high"] == 1.0
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    assert frame["reward"].min() == pytest.approx(0.0) and frame["reward"].max() == pytest.approx(
        1.0
    )
    assert frame["original_reward"].equals(
        store.read("pend-new")[S.REWARD].alias("original_reward")
    )
    row = store.relabels().filter(pl.col("relabel_id") == report.relabel_id).row(0, named=True)
    assert row["destination_kind"] == "parquet" and row["destination"] == str(out.resolve())
    # The file is a log like any other: it ingests back (original_reward lands in extra).
    assert store.ingest(out, dataset="from-parquet").rows_added == 200


def test_relabel_pessimism_needs_an_ensemble(
    trained: tuple[LogStore, Path], tmp_path: Path
) -> None:
    store, model = trained
    with pytest.raises(ParameterError, match="needs an ensemble"):
        relabel(store, model, "pend-new", "x", pessimism=1.0)
    ensemble = tmp_path / "ensemble"
    train(store, "pend", FeatureSpec(), {**SMALL, "n_members": 3}, out=ensemble)
    mean = relabel(store, ensemble, "pend-new", tmp_path / "mean.parquet")
    low = relabel(store, ensemble, "pend-new", tmp_path / "low.parquet", pessimism=2.0)
    assert low.reward_mean < mean.reward_mean
    assert low.provenance["pessimism"] == 2.0


def test_relabel_refusals_leave_the_store_as_it_was(
    trained: tuple[LogStore, Path], tmp_path: Path, snapshot, same_tables
) -> None:
    store, model = trained
    relabel(store, model, "pend-new", "taken")
    before = snapshot(store)
    with pytest.raises(IngestError, match="'taken' already exists"):
        relabel(store, model, "pend-new", "taken")
    with pytest.raises(ParameterError, match="is the source dataset"):
        relabel(store, model, "pend-new", "pend-new")
    with pytest.raises(ParameterError, match="'rescale' parameter"):
        relabel(store, model, "pend-new", "y", rescale=(1.0, 0.0))
    returns = tmp_path / "returns"
    train(store, "pend", FeatureSpec(target="return"), SMALL, out=returns)
    before = snapshot(store)  # training recorded a run
    with pytest.raises(SchemaError, match="return-to-go"):
        relabel(store, returns, "pend-new", "z")
    same_tables(before, snapshot(store))


def test_relabel_with_an_event_model_writes_probabilities(
    trained: tuple[LogStore, Path], tmp_path: Path
) -> None:
    store, _ = trained
    events = tmp_path / "events"
    train(store, "pend", FeatureSpec(target="event", event_threshold=-2.0), SMALL, out=events)
    report = relabel(store, events, "pend-new", "pend-new-events")
    assert 0.0 <= report.reward_min <= report.reward_max <= 1.0


# --------------------------------------------------------------------------- Minari


@pytest.fixture
def minari_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


def make_minari_dataset(dataset_id: str, episodes: int) -> None:
    """A real Minari dataset, made with Minari's own DataCollector."""
    import gymnasium as gym
    import minari

    env = minari.DataCollector(gym.make("CartPole-v1", max_episode_steps=25))
    env.action_space.seed(0)
    for i in range(episodes):
        env.reset(seed=i)
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            done = terminated or truncated
    env.create_dataset(
        dataset_id,
        algorithm_name="random",
        author="rmlite tests",
        author_email="tests@rmlite.invalid",
        code_permalink="https://example.invalid/rmlite",
        description="random CartPole",
        eval_env="CartPole-v1",
    )
    env.close()


def test_minari_import_and_export_round_trip(minari_root: Path, store: LogStore) -> None:
    import minari

    make_minari_dataset("cartpole/random-v0", episodes=6)
    source = minari.load_dataset("cartpole/random-v0")
    report = import_minari(store, "cartpole/random-v0")
    assert report.dataset == "cartpole-random-v0" and report.rows_added == source.total_steps
    log = store.read("cartpole-random-v0")
    assert_well_formed(log)
    assert log[S.EPISODE].n_unique() == 6 and store.check("cartpole-random-v0").problems == []
    first = next(iter(source.iterate_episodes([0])))
    ep0 = log.filter(pl.col(S.EPISODE) == 0)
    np.testing.assert_array_equal(np.asarray(ep0[S.OBS].to_list()), first.observations[:-1])
    np.testing.assert_array_equal(np.asarray(ep0[S.NEXT_OBS][-1]), first.observations[-1])
    assert ep0[S.TERMINATED].to_list() == first.terminations.tolist()
    assert import_minari(store, "cartpole/random-v0").rows_added == 0  # idempotent

    path = export_minari(store, "cartpole-random-v0", "rmlite/exported-v0", env_id="CartPole-v1")
    assert Path(path).is_relative_to(minari_root)
    import_minari(store, "rmlite/exported-v0", "exported")
    keep = [S.EPISODE, S.STEP, S.OBS, S.ACTION, S.REWARD, S.NEXT_OBS, S.TERMINATED, S.TRUNCATED]
    assert store.read("exported", keep).equals(store.read("cartpole-random-v0", keep))


def test_minari_never_downloads(minari_root: Path, store: LogStore) -> None:
    with pytest.raises(RmliteError, match="no local Minari dataset 'D4RL/pen/human-v2'"):
        import_minari(store, "D4RL/pen/human-v2")
    assert not (minari_root / "D4RL").exists()


# ----------------------------------------------------------------------------- CLI


def test_cli_collect_relabel_and_minari(tmp_path: Path) -> None:
    db = str(tmp_path / "cli.duckdb")
    env = {"MINARI_DATASETS_PATH": str(tmp_path / "minari")}
    args = ["collect", "--env", "Pendulum-v1", "--episodes", "6", "--max-steps", "40"]
    out = run(*args, "--dataset", "pend", "--db", db, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["ingest"]["rows_added"] == 240
    # The same seed and offset are the same rows: collecting them again adds nothing.
    again = run(*args, "--dataset", "pend", "--db", db, "--episode-offset", "0", "--json")
    assert json.loads(again.stdout)["ingest"]["rows_added"] == 0

    trained = run("train", "--dataset", "pend", "--db", db, "--next-obs", "--n-estimators", "30",
                  "--out", str(tmp_path / "m"), "--json")  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    out = run("relabel", "--model", str(tmp_path / "m"), "--dataset", "pend", "--out",
              "pend-learned", "--db", db, "--json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["rows_predicted"] == 240

    out = run("minari", "export", "pend/learned-v0", "--dataset", "pend-learned", "--env",
              "Pendulum-v1", "--db", db, "--json", env=env)  # fmt: skip
    assert out.returncode == 0, out.stderr
    out = run("minari", "import", "pend/learned-v0", "--db", db, "--json", env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["rows_added"] == 240

    bad = run("collect", "--env", "Pendulum-v9", "--dataset", "x", "--db", db)
    assert bad.returncode == 2 and "did you mean 'Pendulum-v1'" in bad.stderr
    bad = run("minari", "import", "nope/none-v0", "--db", db, env=env)
    assert bad.returncode == 2 and "no local Minari dataset" in bad.stderr


@pytest.mark.parametrize(("members", "pessimism"), [(1, 0.0), (3, 1.5)])
def test_per_step_fast_path_matches_the_batch_prediction(
    store: LogStore, members: int, pessimism: float
) -> None:
    from rmlite.rl import RewardFunction

    store.ingest(rollout("Pendulum-v1", episodes=6, seed=0, max_steps=60), dataset="p")
    spec = FeatureSpec(next_obs=True, scaling="standard")
    model = train(store, "p", spec, {"n_estimators": 30, "n_members": members}).model
    reward = RewardFunction(model, pessimism=pessimism)
    assert reward._rows is not None  # the LightGBM row predictor is in use
    log = rollout("Pendulum-v1", episodes=1, seed=9, max_steps=100)
    obs, act, nxt = (np.stack(log[c].to_numpy()) for c in ("obs", "action", "next_obs"))
    per_step = reward(obs[:16], act[:16], nxt[:16])  # a vector env's step: the row predictor
    batch = reward(obs, act, nxt)[:16]  # 100 rows: Booster.predict through the estimator
    np.testing.assert_allclose(per_step, batch, rtol=1e-12, atol=1e-12)
    assert np.isfinite(per_step).all() and per_step.std() > 0
