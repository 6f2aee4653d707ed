"""Judging reward models: metrics against ground truth, drift, overfitting, monitor passes."""
