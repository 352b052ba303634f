"""AbaloneMSECond / AbaloneMSEFail: the quality gate as a blocking asset check."""

import json

import dagster as dg

from abalone_platform.defs.shared.resources import ArtifactStore, PipelineParameters
from abalone_platform.defs.shared.summary import failed_run_line, gate_line
from abalone_platform.defs.shared.upstream import EVALUATION_REPORT, upstream
from abalone_platform.faults import fault_point
from abalone_platform.sagemaker import (
    CHECK_STEPS_METADATA,
    MSE_JSON_PATH,
    gate_failure_message,
    mse_within,
    report_mse,
)


# A multi-asset check for a single check, because the gate must do two things an @asset_check
# cannot: record its evaluation (passed=False, with the observed mse and the threshold, which
# the UI, `executions describe` and later runs' require_passed_gate read) AND then fail the step
# with the reference's FailStep message. An @asset_check returns its one result, so raising
# dg.Failure would lose the evaluation; here the result is yielded first and the raise follows.
@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(
            "mse_within_threshold",
            asset=EVALUATION_REPORT,
            blocking=True,
            metadata={CHECK_STEPS_METADATA: ["AbaloneMSECond", "AbaloneMSEFail"]},
            description="SageMaker steps AbaloneMSECond + AbaloneMSEFail: passes when "
            f"{MSE_JSON_PATH} <= MseThreshold; otherwise fails the run with 'Execution failed "
            "due to MSE > {MseThreshold}' and skips deployable_model, batch_predictions and "
            "model_package. Metadata: the observed mse and the mse_threshold it was held to.",
        )
    ],
    name="mse_within_threshold",
)
def mse_within_threshold(
    context: dg.AssetCheckExecutionContext,
    parameters: PipelineParameters,
    artifacts: ArtifactStore,
):
    fault_point("step.mse_within_threshold")
    evaluation = upstream(context, EVALUATION_REPORT)
    report = json.loads(artifacts.store.read_bytes(evaluation.ref))
    mse, threshold = report_mse(report), parameters.mse_threshold
    passed = mse_within(report, threshold)
    message = None if passed else gate_failure_message(threshold)
    yield dg.AssetCheckResult(
        check_name="mse_within_threshold",
        asset_key=EVALUATION_REPORT,
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=message or f"MSE {mse:.4f} <= {threshold}",
        metadata={
            "mse": dg.MetadataValue.float(mse),
            "mse_threshold": dg.MetadataValue.float(threshold),
            "condition": f"{MSE_JSON_PATH} <= MseThreshold",
            "outcome": str(passed),
            "evaluation_run_id": evaluation.run_id,
        },
    )
    if passed:
        context.log.info(gate_line(mse, threshold))
    else:
        # The reason in one line, before Dagster's failure event and its stack trace.
        context.log.error(failed_run_line(context.run.run_id, message, mse))
        # The blocking check alone would fail the step with a generic message; the reference's
        # FailStep text is what users (and scripts grepping the output) look for.
        raise dg.Failure(description=message, metadata={"mse": mse, "mse_threshold": threshold})
