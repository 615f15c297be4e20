"""Lightning tasks: supervised and semi-supervised training."""
