"""cpnas: Child-Parent Neural Architecture Search for 1-bit CNNs.

A runnable reproduction of Zhuo, Zhang et al., "CP-NAS: Child-Parent Neural
Architecture Search for 1-bit CNNs", IJCAI 2020. No official code was released;
this package is an independent implementation. Every piece of logic lives here;
the notebooks in ``notebooks/`` only call it and display the results.
"""

from cpnas.errors import CpnasError

__all__ = ["CpnasError", "__version__"]
__version__ = "0.1.0"
