"""XGBoost's CUDA path through rmlite's estimator on a GPU machine: quality parity with the
CPU, the booster really on cuda, and fit/predict timing (see the header of .ci/gpu)."""

import json
import time

import numpy as np
import xgboost as xgb

from rmlite.estimators.reward import RewardRegressor
from rmlite.models.device import cuda_device_count

print(
    "xgboost",
    xgb.__version__,
    "USE_CUDA",
    xgb.build_info().get("USE_CUDA"),
    "GPUs",
    cuda_device_count(),
)
rng = np.random.default_rng(0)
n, d = 200_000, 20
X = rng.normal(size=(n, d)).astype(np.float32)
y = np.sin(X[:, 0]) * 2 + X[:, 1] * X[:, 2] + 0.5 * np.abs(X[:, 3]) + rng.normal(0, 0.1, n)
tr, te = slice(0, 160_000), slice(160_000, None)
out = {}
devices = ["cpu"] + (["cuda"] if cuda_device_count() else [])
for device in devices:
    m = RewardRegressor(backend="xgboost", device=device, n_estimators=300, random_state=0)
    t = time.perf_counter()
    m.fit(X[tr], y[tr])
    fit = time.perf_counter() - t
    p = m.predict(X[te])
    r2 = 1 - np.mean((p - y[te]) ** 2) / np.var(y[te])
    cfg = json.loads(m.members_[0].save_config())["learner"]["generic_param"]["device"]
    out[device] = {"r2": r2, "fit_s": fit, "booster_device": cfg, "device_": m.device_}
    print(device, out[device], flush=True)
if "cuda" in out:
    assert out["cuda"]["booster_device"].startswith("cuda"), out
    assert out["cuda"]["r2"] >= out["cpu"]["r2"] - 0.01, out
    print("QUALITY PARITY OK")
# timing like the other GPU rows: 1M x 40, 100 trees
X = rng.normal(size=(1_000_000, 40)).astype(np.float32)
y = X[:, 0] ** 2 + X[:, 1] + rng.normal(0, 0.1, len(X))
for device in devices:
    m = RewardRegressor(backend="xgboost", device=device, n_estimators=100, random_state=0)
    t = time.perf_counter()
    m.fit(X, y)
    fit = time.perf_counter() - t
    t = time.perf_counter()
    m.predict(X)
    pred = time.perf_counter() - t
    print(
        f"timing xgboost {device}: fit {fit:.2f} s, predict {len(X) / pred / 1e6:.2f} Mrows/s",
        flush=True,
    )
