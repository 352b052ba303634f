"""The read side that `abalone-platform` serves: lineage, execution records and the pipeline
definition, read from a Dagster instance, the Definitions (passed in, never imported) and the
MLflow registry."""
