"""Local sandbox: the real stacks deployed onto moto server, run by a local control plane."""

import sys
from pathlib import Path

# The sandbox reads what the runtime writes (the payment ledger) with the runtime's own code.
_RUNTIME = str(Path(__file__).resolve().parents[1] / "runtime")
if _RUNTIME not in sys.path:
    sys.path.append(_RUNTIME)
