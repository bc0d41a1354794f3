"""Key-service test fixtures (defined in kmstest_support.py)."""

from kmstest_support import kms, kms_factory, pki, tee  # noqa: F401
