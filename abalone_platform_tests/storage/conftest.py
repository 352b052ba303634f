from abalone_platform_tests.storage.s3_server import aws_env, bucket, s3_server

__all__ = ["aws_env", "bucket", "s3_server"]
