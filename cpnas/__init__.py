"""cpnas: Child-Parent Neural Architecture Search for 1-bit CNNs.

A runnable reproduction of Zhuo, Zhang et al., "CP-NAS: Child-Parent Neural
Architecture Search for 1-bit CNNs", IJCAI 2020. No official code was released;
this package is an independent implementation. Every piece of logic lives here;
the notebooks in ``notebooks/`` only call it and display the results.
"""

import os as _os

# With cores shared with another busy process, OpenMP's default spin-waiting slows small
# CPU kernels (e.g. BatchNorm on a small activation) down by a large factor; passive
# waiting removes that. It must be set before torch loads its OpenMP runtime.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from cpnas import config as _config  # noqa: E402
from cpnas.errors import CpnasError  # noqa: E402


def _builtin_strategies() -> None:
    """Import the built-in strategies: a configuration lists their own sections (:func:`cpnas.config.sections`)."""
    from cpnas.strategy_base import load_builtins

    load_builtins()


_config.add_section_loader(_builtin_strategies)

__all__ = ["CpnasError", "__version__"]
__version__ = "0.1.0"
