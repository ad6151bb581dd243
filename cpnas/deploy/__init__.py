"""1-bit inference that runs: bit-packed weights, folded BN, XNOR-popcount 1×1 convs, int8 depthwise convs.

* :mod:`cpnas.deploy.kernels` — the C++ extension (built at first use).
* :mod:`cpnas.deploy.packed` — :func:`~cpnas.deploy.packed.pack_network`, the packed modules.
* :mod:`cpnas.deploy.measure` — exactness against the simulated network, latency, file size.
* :mod:`cpnas.deploy.modelfile` — the one-file packed model (``cpnas deploy --save`` / ``--load``).
* :mod:`cpnas.deploy.classify` — classify a folder of images with a model file.
"""
