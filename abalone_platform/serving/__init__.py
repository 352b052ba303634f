"""The real-time endpoint (`abalone-platform serve`): SageMaker's inference container contract
(GET /ping, POST /invocations) on Starlette + uvicorn, serving the registry's `approved`
version (or a pinned one) and following approvals as they happen."""
