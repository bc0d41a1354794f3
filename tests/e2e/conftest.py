"""End-to-end test fixtures (defined in e2e_support.py)."""

from e2e_support import e2e_pki, service, service_factory, tee  # noqa: F401
