"""Engine functions: one module per outside system (gradient boosting, torch)."""
