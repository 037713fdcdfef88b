"""For every test of the repository (tests/ and each plugin's tests/): whatever a test started
goes when it ends (tests/leftovers.py)."""

pytest_plugins = ["tests.leftovers"]
