"""The `s3` resource: dagster-aws' ``S3Resource`` configuration, without importing dagster-aws
until a client is wanted.

Importing anything from dagster-aws runs its package ``__init__``, which imports every component
it ships (Athena, Secrets Manager, ECR, RDS...; boto3 and Dagster's test utilities with them):
about a second on every load of the code location (each code server start, sensor tick process,
`dg check defs`), for a resource that most runs never use. This class has the same fields
(the same config schema under ``resources.s3.config``) and builds its client with dagster-aws'
own ``construct_s3_client``, imported the first time a client is asked for; the endpoint and
credentials still come from boto3's standard chain unless set here.

An ``ArtifactStore`` also accepts dagster-aws' own ``S3Resource`` (anything with
``get_client()``), as it did before.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import Field


class S3Resource(dg.ConfigurableResource, dg.IAttachDifferentObjectToOpContext):
    """S3 access: ``get_client()`` is a boto3 S3 client (dagster-aws' ``S3Resource``, lazily)."""

    use_unsigned_session: bool = Field(
        default=False, description="Specifies whether to use an unsigned S3 session."
    )
    region_name: str | None = Field(
        default=None, description="Specifies a custom region for the S3 session."
    )
    endpoint_url: str | None = Field(
        default=None, description="Specifies a custom endpoint for the S3 session."
    )
    max_attempts: int = Field(
        default=5,
        description=(
            "This provides Boto3's retry handler with a value of maximum retry attempts, where the"
            " initial call counts toward the max_attempts value that you provide."
        ),
    )
    profile_name: str | None = Field(
        default=None, description="Specifies a profile to connect that session."
    )
    use_ssl: bool = Field(
        default=True, description="Whether or not to use SSL. By default, SSL is used."
    )
    verify: bool | None = Field(
        default=None,
        description=(
            "Whether or not to verify SSL certificates. By default SSL certificates are verified."
        ),
    )
    aws_access_key_id: str | None = Field(
        default=None, description="AWS access key ID to use when creating the boto3 session."
    )
    aws_secret_access_key: str | None = Field(
        default=None, description="AWS secret access key to use when creating the boto3 session."
    )
    aws_session_token: str | None = Field(
        default=None, description="AWS session token to use when creating the boto3 session."
    )

    def get_client(self) -> Any:
        """A boto3 S3 client, exactly as dagster-aws' ``S3Resource.get_client()`` builds it."""
        from dagster_aws.s3.utils import construct_s3_client

        return construct_s3_client(
            max_attempts=self.max_attempts,
            region_name=self.region_name,
            endpoint_url=self.endpoint_url,
            use_unsigned_session=self.use_unsigned_session,
            profile_name=self.profile_name,
            use_ssl=self.use_ssl,
            verify=self.verify,
            aws_access_key_id=self.aws_access_key_id,
            aws_secret_access_key=self.aws_secret_access_key,
            aws_session_token=self.aws_session_token,
        )

    def get_object_to_set_on_execution_context(self) -> Any:
        return self.get_client()
