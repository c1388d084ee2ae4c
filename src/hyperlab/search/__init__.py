"""The search: the study sweeper (Optuna ask/tell behind Hydra's `-m`), the search space, model selection over a
finished sweep, the winner's refit, and nested cross-validation. It reads runs through the run-output contract
(hyperlab.runs: metrics.json, .hydra/), never the internals of models or data."""
