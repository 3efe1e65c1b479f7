"""The test suite: one module per area (`test_*.py`), fixtures in `conftest.py`, shared helpers in `helpers/`.

A package, so test modules import their helpers by name (`from tests.helpers import write_story`) and pytest
puts the checkout (not `tests/`) on the import path.
"""
