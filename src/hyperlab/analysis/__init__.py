"""Analyses of a trained network, run after fit on its scored weights: compression (pruning, int8 copies),
robustness (adversarial examples) and interpretability (integrated-gradient attributions)."""
