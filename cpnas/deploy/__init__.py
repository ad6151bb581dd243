"""1-bit inference that runs: bit-packed weights, folded BN, XNOR-popcount 1×1 convs, int8 depthwise convs.

* :mod:`cpnas.deploy.kernels` — the C++ extension (built at first use).
* :mod:`cpnas.deploy.packed` — the packed modules (one per op block).
* :mod:`cpnas.deploy.network` — :func:`~cpnas.deploy.network.pack_network`, the packed network and its file.
* :mod:`cpnas.deploy.cellplan` — a packed cell as one extension call.
* :mod:`cpnas.deploy.simulated` — the simulated network's logits and integers, for the exactness check.
* :mod:`cpnas.deploy.measure` — exactness against the simulated network, latency, file size.
* :mod:`cpnas.deploy.report` — ``cpnas deploy``'s report and ``make bench`` (e).
* :mod:`cpnas.deploy.modelfile` — the one-file packed model (``cpnas deploy --save`` / ``--load``).
* :mod:`cpnas.deploy.classify` — classify a folder of images with a model file.
"""
