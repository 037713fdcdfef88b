"""runner: a declarative pipeline runner driven by YAML manifests.

The public API: load and check manifests, plan, apply. Plugins use `runner.contracts`.
"""

from runner.errors import Diagnostic, UserError

__version__ = "0.1.0"

__all__ = ["Diagnostic", "UserError", "__version__"]
