"""Explaining reward models: importances, SHAP values, shap's TreeExplainer, learning
records, feature names from the FeatureSpec, ``rmlite explain``, and class weights that
raise recall while ``predict_proba`` stays calibrated."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import recall_score

from rmlite.data.features import FeatureSpec, build_features
from rmlite.data.store import LogStore
from rmlite.estimators._calibration import logit
from rmlite.estimators.loading import load_model
from rmlite.estimators.reward import RewardClassifier, RewardRegressor
from rmlite.evaluation.explain import explain
from rmlite.evaluation.metrics import expected_calibration_error
from rmlite.exceptions import ParameterError
from rmlite.pipeline import predict, train
from rmlite.testing import rollout

TREES = ["lightgbm", "xgboost"]
SPEC = FeatureSpec(next_obs=True, delta=True, scaling="standard")


@pytest.fixture(scope="module")
def frame():  # type: ignore[no-untyped-def]
    """Pendulum-v1 features: obs, action, next_obs, delta → reward (not scaled)."""
    log = rollout("Pendulum-v1", episodes=12, seed=0, max_steps=100)
    return build_features(log.to_arrow(), FeatureSpec(next_obs=True, delta=True))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A store and a LightGBM model trained by the pipeline on a scaled target."""
    folder = tmp_path_factory.mktemp("explain")
    store = LogStore(folder / "store.duckdb")
    store.ingest(rollout("Pendulum-v1", episodes=12, seed=0, max_steps=100), dataset="pendulum")
    result = train(
        store,
        "pendulum",
        SPEC,
        {"n_estimators": 60, "early_stopping_rounds": 5, "n_jobs": 1},
        out=folder / "model",
    )
    return store, folder / "model", result


# ----------------------------------------------------------------- SHAP values


@pytest.mark.parametrize("backend", TREES)
@pytest.mark.parametrize("n_members", [1, 3])
def test_pred_contrib_rows_sum_to_predict(frame, backend: str, n_members: int) -> None:  # type: ignore[no-untyped-def]
    # Early stopping leaves trees past the best round in the booster: the contributions
    # must come from the kept trees only, or rows would not sum to predict.
    model = RewardRegressor(
        backend=backend,
        n_estimators=300,
        learning_rate=0.3,
        early_stopping_rounds=3,
        n_members=n_members,
        random_state=0,
        n_jobs=1,
    ).fit(frame.X, frame.y, groups=frame.groups)
    rounds = model.n_iter_ if n_members == 1 else model.n_iter_[0]
    best = model.best_iteration_ if n_members == 1 else model.best_iteration_[0]
    assert best < rounds  # stopped early: trees past the best exist
    X = frame.X[:300]
    contrib = model.predict(X, pred_contrib=True)
    assert contrib.shape == (300, X.shape[1] + 1)
    np.testing.assert_allclose(contrib.sum(axis=1), model.predict(X), atol=1e-4)
    # The bias is the expected value: the same for every row.
    assert np.ptp(contrib[:, -1]) < 1e-9


@pytest.mark.slow  # importing shap (numba) alone takes about 10 s
@pytest.mark.parametrize("backend", TREES)
def test_shap_tree_explainer_takes_the_booster(frame, backend: str) -> None:  # type: ignore[no-untyped-def]
    shap = pytest.importorskip("shap")
    model = RewardRegressor(backend=backend, n_estimators=40, random_state=0, n_jobs=1)
    model.fit(frame.X, frame.y)
    X = frame.X[:200]
    values = shap.TreeExplainer(model.booster_).shap_values(X)
    np.testing.assert_allclose(values, model.predict(X, pred_contrib=True)[:, :-1], atol=1e-5)
    ensemble = RewardRegressor(backend=backend, n_estimators=5, n_members=2, n_jobs=1)
    ensemble.fit(frame.X, frame.y)
    with pytest.raises(AttributeError, match=r"2 members.*pred_contrib=True"):
        _ = ensemble.booster_


def test_classifier_contributions_are_log_odds_before_calibration(frame) -> None:  # type: ignore[no-untyped-def]
    y = (frame.y > -1.0).astype(int)
    clf = RewardClassifier(class_weight="balanced", n_estimators=30, random_state=0, n_jobs=1)
    clf.fit(frame.X, y, groups=frame.groups)
    contrib = clf.predict(frame.X, pred_contrib=True)
    raw = clf._member_predictions(frame.X)[0]
    np.testing.assert_allclose(contrib.sum(axis=1), logit(raw), atol=1e-6)


def test_mlp_has_no_tree_explanations(frame) -> None:  # type: ignore[no-untyped-def]
    mlp = RewardRegressor(backend="mlp", max_epochs=1, random_state=0).fit(frame.X, frame.y)
    with pytest.raises(AttributeError, match="permutation_importance"):
        _ = mlp.feature_importances_
    assert not hasattr(mlp, "feature_importances_")  # as scikit-learn's estimators without it
    with pytest.raises(ParameterError, match="pred_contrib=True needs a tree backend"):
        mlp.predict(frame.X, pred_contrib=True)


# --------------------------------------------------------------- importances


@pytest.mark.parametrize("backend", TREES)
def test_feature_importances_gain_and_split(backend: str, rng: np.random.Generator) -> None:
    X = rng.normal(size=(3000, 3)).astype(np.float32)
    y = 3.0 * X[:, 0] + 0.3 * X[:, 1]  # feature 2 is noise
    kwargs = {"backend": backend, "n_estimators": 30, "random_state": 0, "n_jobs": 1}
    gain = RewardRegressor(**kwargs).fit(X, y).feature_importances_
    split = RewardRegressor(importance_type="split", **kwargs).fit(X, y).feature_importances_
    assert gain.shape == split.shape == (3,)
    assert gain[0] > 10 * gain[1] > 10 * gain[2]  # the loss reduction follows the signal
    assert np.array_equal(split, np.round(split)) and split.sum() > 30  # counts of splits
    ensemble = RewardRegressor(n_members=3, **kwargs).fit(X, y)
    from rmlite.models.gbm import gbm_importance

    members = [gbm_importance(backend, b, 3, "gain") for b in ensemble.members_]  # type: ignore[arg-type]
    np.testing.assert_allclose(ensemble.feature_importances_, np.mean(members, axis=0))
    with pytest.raises(ParameterError, match="importance_type"):
        RewardRegressor(importance_type="cover").check_params()


# ------------------------------------------------ learning records, feature names


@pytest.mark.parametrize("backend", [*TREES, "mlp"])
def test_iterations_and_evals_result_survive_saving(tmp_path: Path, frame, backend: str) -> None:  # type: ignore[no-untyped-def]
    model = RewardRegressor(
        backend=backend,
        n_estimators=200,
        max_epochs=30,
        learning_rate=0.3 if backend != "mlp" else 3e-3,
        early_stopping_rounds=3,
        random_state=0,
        n_jobs=1,
    ).fit(frame.X, frame.y, groups=frame.groups)
    assert 1 <= model.best_iteration_ <= model.n_iter_
    assert model.n_iter_ < (200 if backend != "mlp" else 30)  # early stopping ran
    curves = model.evals_result_
    assert set(curves) == {"train", "valid"} and len(curves["valid"]["l2"]) == model.n_iter_
    loaded = load_model(model.save(tmp_path / "m"))
    assert (loaded.n_iter_, loaded.best_iteration_) == (model.n_iter_, model.best_iteration_)
    assert loaded.evals_result_ == curves
    plain = RewardRegressor(backend=backend, n_estimators=5, max_epochs=2).fit(frame.X, frame.y)
    with pytest.raises(AttributeError, match="without early stopping"):
        _ = plain.best_iteration_
    if backend == "mlp":  # the MLP always records its training loss
        assert set(plain.evals_result_) == {"train"}
    else:
        with pytest.raises(AttributeError, match="no learning curve"):
            _ = plain.evals_result_


def test_train_names_features_from_the_spec(trained) -> None:  # type: ignore[no-untyped-def]
    store, model_dir, result = trained
    names = ["obs_0", "obs_1", "obs_2", "act_0"]
    names += [f"{kind}_{i}" for kind in ("next_obs", "delta") for i in range(3)]
    assert list(result.model.feature_names_in_) == names
    loaded = load_model(model_dir)
    assert list(loaded.feature_names_in_) == names
    assert loaded.best_iteration_ <= loaded.n_iter_
    # rmlite's own matrix predicts without scikit-learn's "fitted with feature names" warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        predict(store, model_dir, "pendulum")


# --------------------------------------------------------------- explain


def test_explain_ranks_features_in_reward_units(trained) -> None:  # type: ignore[no-untyped-def]
    store, model_dir, result = trained
    table = explain(store, model_dir, "pendulum", top=None)
    assert table["rank"].to_list() == list(range(1, 11))
    assert sorted(table["feature"]) == sorted(result.model.feature_names_in_)
    assert np.isclose(table["share"].sum(), 1.0)
    # Pendulum's reward is −(θ² + 0.1·θ̇² + 0.001·u²): the angle (cos θ = obs_0, or its
    # delta/next value) leads, the torque counts least.
    assert table["feature"][0] in {"obs_0", "obs_1", "next_obs_0", "next_obs_1"}
    assert table.filter(table["feature"] == "act_0")["rank"][0] >= 6

    # The target was scaled (standard): contributions times the scale, plus the bias
    # scaled back, sum to the predicted rewards of the held-out episodes.
    model = load_model(model_dir)
    from rmlite.evaluation.frame import model_frame

    held = model_frame(store, model, "pendulum", False, episodes=result.holdout_episodes)
    scale, center = held.stats.target_scale, held.stats.target_center
    assert scale != 1.0
    contrib = model.predict(held.X, pred_contrib=True)
    rewards = (contrib[:, :-1] * scale).sum(axis=1) + contrib[:, -1] * scale + center
    expected = predict(store, model_dir, "pendulum")
    on_holdout = np.isin(expected["episode_id"].to_numpy(), result.holdout_episodes)
    np.testing.assert_allclose(rewards, expected["prediction"].to_numpy()[on_holdout], atol=1e-6)
    # The table's mean |SHAP| is that of the scaled-back contributions.
    top = table.row(0, named=True)
    j = list(held.feature_names).index(top["feature"])
    assert np.isclose(top["mean_abs_shap"], np.abs(contrib[:, j] * scale).mean())


def test_explain_refuses_models_without_trees(trained) -> None:  # type: ignore[no-untyped-def]
    store, model_dir, _ = trained
    # Refused from the backend alone, before any feature is built.
    with pytest.raises(ParameterError, match="permutation_importance"):
        explain(store, model_dir, "pendulum", model=RewardRegressor(backend="mlp"))
    with pytest.raises(ParameterError, match="top must be a positive"):
        explain(store, model_dir, "pendulum", top=0)


def test_cli_explain_json(trained) -> None:  # type: ignore[no-untyped-def]
    store, model_dir, _ = trained
    out = subprocess.run(
        [sys.executable, "-m", "rmlite.cli", "explain", "--db", store.path, "--model",
         str(model_dir), "--dataset", "pendulum", "--top", "4", "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    features = payload["features"]
    assert [f["rank"] for f in features] == [1, 2, 3, 4]
    shares = [f["mean_abs_shap"] for f in features]
    assert shares == sorted(shares, reverse=True) and shares[0] > 0


def test_report_draws_the_importance_chart(trained) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("plotly")
    from rmlite.dashboard.report import build_report

    store, model_dir, _ = trained
    report = build_report(store, model_dir, "pendulum")
    top = report.summary["top_features"]
    assert len(top) == 5 and top[0]["rank"] == 1
    assert 'id="chart-importance"' in report.html
    data = report.html.split('id="rmlite-data">', 1)[1].split("</script>", 1)[0]
    figure = json.loads(data)["figures"]["importance"]
    bars = figure["data"][0]
    # Most important on top: plotly draws the last bar of a horizontal chart highest.
    assert bars["y"][-1] == top[0]["feature"] and bars["x"][-1] == top[0]["mean_abs_shap"]


# --------------------------------------------------------------- class weights


@pytest.fixture(scope="module")
def sparse_event():  # type: ignore[no-untyped-def]
    """Pendulum-v1 near upright (reward > −0.5): about 5% of steps, clustered in episodes."""
    log = rollout("Pendulum-v1", episodes=60, seed=1)
    f = build_features(log.to_arrow(), FeatureSpec())
    return f.X, (f.y > -0.5).astype(int), f.groups


@pytest.mark.parametrize("backend", [*TREES, pytest.param("mlp", marks=pytest.mark.slow)])
def test_class_weight_raises_recall_and_stays_calibrated(sparse_event, backend: str) -> None:  # type: ignore[no-untyped-def]
    X, y, groups = sparse_event
    train_rows = groups % 3 != 0  # a third of the episodes held out
    assert 0.03 < y.mean() < 0.08
    recall, mean_p, ece = {}, {}, {}
    for class_weight in (None, "balanced"):
        clf = RewardClassifier(
            backend=backend,
            class_weight=class_weight,
            n_estimators=20,  # under-fitted on purpose: where the prior correction failed
            max_epochs=5,
            validation_fraction=0.25,
            random_state=0,
            n_jobs=1,
        ).fit(X[train_rows], y[train_rows], groups=groups[train_rows])
        p = clf.predict_proba(X[~train_rows])[:, 1]
        recall[class_weight] = recall_score(y[~train_rows], clf.predict(X[~train_rows]))
        mean_p[class_weight] = p.mean()
        ece[class_weight] = expected_calibration_error(y[~train_rows], p)
    rate = y[~train_rows].mean()
    assert recall["balanced"] > recall[None]
    assert recall["balanced"] >= 0.95
    # Calibrated on held-out episodes: the mean probability within 0.02 of the event rate
    # (0.06 here) and ECE below 0.02.
    assert abs(mean_p["balanced"] - rate) < 0.02
    assert ece["balanced"] < 0.02


def test_calibration_is_saved_and_old_models_keep_their_correction(
    tmp_path: Path, sparse_event
) -> None:  # type: ignore[no-untyped-def]
    X, y, groups = sparse_event
    clf = RewardClassifier(class_weight="balanced", n_estimators=20, random_state=0, n_jobs=1)
    clf.fit(X, y, groups=groups)
    a, b = clf.calibration_[0]
    assert a > 0 and b < 0  # the weighted model over-predicts events: the map shrinks odds
    folder = clf.save(tmp_path / "clf")
    np.testing.assert_array_equal(load_model(folder).predict_proba(X), clf.predict_proba(X))
    # A model saved before Platt scaling carries its prior-shift factor instead.
    meta = json.loads((folder / "model.json").read_text())
    del meta["calibration"]
    meta["odds_factor"] = 4.0
    (folder / "model.json").write_text(json.dumps(meta))
    raw = clf._member_predictions(X)[0]
    odds = raw / (1 - raw) / 4.0
    np.testing.assert_allclose(load_model(folder).predict_proba(X)[:, 1], odds / (1 + odds))
