"""Training stage: `train` (resumable, checkpointed) and `evaluate` (accuracy, confusion)."""
