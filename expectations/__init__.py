"""Packaged Great Expectations suites (GX 1.x JSON), one per validated table."""
