"""The test suite of smartfab: one subpackage per area, shared helpers in tests.support."""
