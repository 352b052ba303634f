"""AbaloneProcess: read and validate InputData, split, fit the preprocessor on training rows."""

import dagster as dg

from abalone_platform.compute.cluster import ClusterError
from abalone_platform.compute.processing import read_abalone_csv_on
from abalone_platform.defs.shared.resources import (
    ArtifactStore,
    DaskCluster,
    PipelineParameters,
    describe_run_on,
    ran_on_metadata,
)
from abalone_platform.errors import InputDataError
from abalone_platform.faults import fault_point
from abalone_platform.ml.data import read_abalone_csv
from abalone_platform.ml.preprocess import SPLIT_COLUMNS, plan_splits
from abalone_platform.sagemaker import OUTPUT_TAG, STEP_TAG
from abalone_platform.storage.artifacts import INPUT_EXAMPLE_KEY
from abalone_platform.storage.inputs import named_by_uri

INPUT_PARAMETER = "input_data (InputData)"
SPLITS = ("train_split", "validation_split", "test_split")
_SPLIT_SCHEMA = dg.TableSchema(columns=[dg.TableColumn(name, "double") for name in SPLIT_COLUMNS])


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
    input_uri = parameters.effective_input_data
    count = parameters.processing_instance_count
    ran_on: dict[str, object] = {"compute": "in-process"}
    try:
        source = artifacts.resolve_input(input_uri, INPUT_PARAMETER, env_hint="ABALONE_INPUT_DATA")
        if count == 1:
            rows = read_abalone_csv(source.path, INPUT_PARAMETER, require_label=True)
        else:
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
        "input_data": input_uri,
        "input_sha256": source.sha256,
        "input_rows": len(rows),
        "seed": parameters.seed,
        "processing_instance_count": count,
        **ran_on,
    }
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
                "dagster/column_schema": _SPLIT_SCHEMA,
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
