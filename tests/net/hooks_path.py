"""Makes hooks/bridge_net importable in tests (it is installed beside the hook script, not as a package)."""
import os
import sys

_HOOKS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "hooks")
if _HOOKS not in sys.path:
    sys.path.insert(0, _HOOKS)

from bridge_net import allocator, firewall, main, netsetup  # noqa: E402,F401
