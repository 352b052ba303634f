import dagster as dg

from abalone_platform_tests.helpers import run_pipeline


def test_pipeline_runs(in_process):
    with dg.DagsterInstance.get() as instance:
        result = run_pipeline(instance)
        assert result.success
        mat = instance.get_latest_materialization_event(dg.AssetKey("model_package"))
        assert mat.asset_materialization.metadata["model_package_version"].value == 1
