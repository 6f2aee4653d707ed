"""scikit-learn estimators over the engines in :mod:`rmlite.models`, and the model folder.

``reward`` holds :class:`RewardRegressor` and :class:`RewardClassifier`; ``preference``
the Bradley–Terry :class:`PreferenceRewardModel`; ``loading`` :func:`load_model`, which
reads any saved model (the folder format itself is in ``_folder``).
"""
