"""The composed config's edge, torch-free: `schema` (typed top-level keys, registered with Hydra), `rules` (value
and cross-key checks run before anything is built), `key_errors` (a constructor's refusal named by its key) and
`cli` (compose, --help, one-line errors). Importing this package registers nothing; importing `schema` does."""
