"""Names shared by the pyfunc model file and the code that logs and reads it. Apart from the
model file because importing that file registers its model with MLflow (models-from-code)."""

BUNDLE_ARTIFACT = "bundle"
BUNDLE_SHA256_CONFIG = "bundle_sha256"
