"""ProcessingInstanceCount on Dask: the data work (parse/validate, the batch transform) as tasks
over line-aligned byte ranges, on a LocalCluster started for the step or on the cluster
DASK_SCHEDULER_ADDRESS names. Dagster-free; nothing here is imported when the count is 1."""
