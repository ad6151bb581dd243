"""1-bit inference that runs: bit-packed weights, folded BN, XNOR-popcount 1×1 convs (issue 15).

* :mod:`cpnas.deploy.kernels` — the C++ extension (built at first use).
* :mod:`cpnas.deploy.packed` — :func:`~cpnas.deploy.packed.pack_network`, the packed modules.
* :mod:`cpnas.deploy.measure` — exactness against the simulated network, latency, file size.
"""
