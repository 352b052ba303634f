"""Pure ML functions (no Dagster): reading, preprocessing, training, evaluation, prediction."""
