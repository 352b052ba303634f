"""AbaloneProcess: read and validate InputData, split, fit the preprocessor on training rows."""

import dagster as dg

from abalone_platform.defs.shared.caching import StepCache
from abalone_platform.defs.shared.resources import (
    ArtifactStore,
    DaskCluster,
    PipelineParameters,
    describe_run_on,
    ran_on_metadata,
)
from abalone_platform.errors import INPUT_PARAMETER, InputDataError
from abalone_platform.faults import fault_point
from abalone_platform.sagemaker import OUTPUT_TAG, STEP_TAG
from abalone_platform.storage.artifacts import INPUT_EXAMPLE_KEY
from abalone_platform.storage.inputs import named_by_uri

# The ML and Dask modules (NumPy, Arrow, Dask) are imported by the step when it runs: loading
# the code location (every code server, sensor tick and `dg check defs`) never needs them.

SPLITS = ("train_split", "validation_split", "test_split")


@dg.multi_asset(
    name="abalone_process",
    group_name="processing",
    specs=[
        *(
            dg.AssetSpec(
                name,
                description=f"SageMaker step AbaloneProcess, output '{name.removesuffix('_split')}'"
                ": Parquet, rings first, then 7 scaled numerics and one-hot sex F, I, M.",
                kinds={"parquet"},
                tags={STEP_TAG: "AbaloneProcess", OUTPUT_TAG: name.removesuffix("_split")},
            )
            for name in SPLITS
        ),
        dg.AssetSpec(
            "preprocessor",
            description="SageMaker step AbaloneProcess: median imputer + standard scaler + "
            "one-hot encoder fit on the training rows only, kept as JSON (the reference fits on "
            "all rows and never saves it).",
            kinds={"json"},
            tags={STEP_TAG: "AbaloneProcess"},
        ),
    ],
)
def abalone_process(
    context: dg.AssetExecutionContext,
    parameters: PipelineParameters,
    artifacts: ArtifactStore,
    dask: DaskCluster,
):
    fault_point("step.abalone_process")
    from abalone_platform.compute.cluster import ClusterError
    from abalone_platform.ml.data import read_abalone_csv
    from abalone_platform.ml.preprocess import SPLIT_COLUMNS, plan_splits

    input_uri = parameters.effective_input_data
    count = parameters.processing_instance_count
    ran_on: dict[str, object] = {"compute": "in-process"}
    try:
        source = artifacts.resolve_input(input_uri, INPUT_PARAMETER, env_hint="ABALONE_INPUT_DATA")
    except InputDataError as exc:
        raise dg.Failure(description=str(named_by_uri(exc, input_uri))) from exc
    # The splits and the preprocessor depend on the input's bytes and the seed only: every
    # ProcessingInstanceCount gives the same bytes (tested), so the count is not in the key.
    cache = StepCache(
        context,
        step="abalone_process",
        assets=[*SPLITS, "preprocessor"],
        inputs={"input_data": source.sha256},
        affecting={"seed": parameters.seed},
        parameters=parameters,
        step_module=__file__,
    )
    # This run's own entries, over a reused computation's: where it found the input and the
    # count it was given.
    run_metadata = {
        "input_data": input_uri,
        "processing_instance_count": count,
        **cache.metadata(None),
    }
    hit = cache.lookup(artifacts.store)
    if hit is not None:
        fresh = {**run_metadata, **cache.metadata(hit)}
        for name in [*SPLITS, "preprocessor"]:
            yield dg.MaterializeResult(asset_key=name, metadata=hit.reused(name, fresh))
        return
    try:
        if count == 1:
            rows = read_abalone_csv(source.path, INPUT_PARAMETER, require_label=True)
        else:
            from abalone_platform.compute.processing import read_abalone_csv_on

            with dask.open(count) as cluster:
                read = read_abalone_csv_on(
                    cluster,
                    source.path,
                    dask.range_source(cluster, source, artifacts),
                    INPUT_PARAMETER,
                    require_label=True,
                )
            rows = read.rows
            ran_on = ran_on_metadata(cluster, read.tasks_per_worker)
            context.log.info(f"Parsed {len(rows):,} rows on {describe_run_on(ran_on)}")
        plan = plan_splits(rows, parameters.seed)
    except InputDataError as exc:
        raise dg.Failure(description=str(named_by_uri(exc, input_uri))) from exc
    except ClusterError as exc:
        raise dg.Failure(description=f"processing_instance_count {count}: {exc}") from exc
    run_id = context.run.run_id
    input_metadata = {
        "input_sha256": source.sha256,
        "input_rows": len(rows),
        "seed": parameters.seed,
        **ran_on,
        **run_metadata,
    }
    split_schema = dg.TableSchema(
        columns=[dg.TableColumn(name, "double") for name in SPLIT_COLUMNS]
    )
    store = artifacts.store
    for name in SPLITS:
        split = name.removesuffix("_split")
        # Written chunk by chunk (row groups) straight into the artifact: bounded memory.
        ref = store.write_with(
            name, run_id, f"{name}.parquet", lambda path, split=split: plan.write(split, path)
        )
        yield dg.MaterializeResult(
            asset_key=name,
            metadata={
                **ref.as_metadata(),
                "dagster/row_count": len(plan.indices[split]),
                "dagster/column_schema": split_schema,
                **input_metadata,
                # A few raw rows of the input, kept once: the registered model's input example.
                **(
                    {INPUT_EXAMPLE_KEY: dg.MetadataValue.json(rows.head_records(5))}
                    if name == "test_split"
                    else {}
                ),
            },
        )
    preprocessor = plan.preprocessor
    ref = store.write_bytes("preprocessor", run_id, "preprocessor.json", preprocessor.to_json())
    yield dg.MaterializeResult(
        asset_key="preprocessor",
        metadata={
            **ref.as_metadata(),
            "fitted_rows": preprocessor.fitted_rows,
            "means": dg.MetadataValue.json(
                dict(zip(preprocessor.numeric_columns, preprocessor.means, strict=True))
            ),
            "scales": dg.MetadataValue.json(
                dict(zip(preprocessor.numeric_columns, preprocessor.scales, strict=True))
            ),
            **input_metadata,
        },
    )
