"""scikit-learn estimators over the engines in :mod:`rmlite.models`, and the model folder.

``reward`` holds :class:`RewardRegressor` and :class:`RewardClassifier`; ``preference``
the Bradley–Terry :class:`PreferenceRewardModel`.
"""
