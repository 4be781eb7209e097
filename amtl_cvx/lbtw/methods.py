"""The methods of the LBTW comparison and the network settings of its presets.

:data:`METHODS` names every method of :func:`amtl_cvx.lbtw.comparison.compare` and the
single-task reference it is compared with; :data:`PRESETS` holds the network settings
(``"light"``: this package's quick setting, ``"release"``: the LBTW release's).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["METHODS", "PRESETS", "DEFAULT_METHODS"]

#: Method key -> (label, reference key or None).
METHODS: dict[str, tuple[str, str | None]] = {
    "stl_net": ("single-task network", None),
    "equal": ("MTL network, equal weights", "stl_net"),
    "lbtw0.1": ("LBTW alpha=0.1", "stl_net"),
    "lbtw0.5": ("LBTW alpha=0.5", "stl_net"),
    "gradnorm0.1": ("GradNorm alpha=0.1", "stl_net"),
    "gradnorm0.5": ("GradNorm alpha=0.5", "stl_net"),
    "cosine": ("RMTL (cosine, focused)", "stl_net"),
    "finetune": ("fine-tuning (focused)", "stl_net"),
    "stl_logistic": ("single-task logistic", None),
    "amtl": ("AMTL (logistic)", "stl_logistic"),
}
_WEIGHTING = {
    "equal": ("equal", {}),
    "lbtw0.1": ("lbtw", {"alpha": 0.1}),
    "lbtw0.5": ("lbtw", {"alpha": 0.5}),
    "gradnorm0.1": ("gradnorm", {"alpha": 0.1}),
    "gradnorm0.5": ("gradnorm", {"alpha": 0.5}),
}

#: Network settings of the two presets and the methods each runs by default.
#: ``"light"``: this package's quick setting (not the release's). ``"release"``: the LBTW
#: release's (``json/LBTW.json``, ``pcba_model.py``): two shared layers of 2000 units,
#: ReLU then sigmoid (its ``"activations"``), dropout 0.25 before each activation,
#: batch normalisation of the last shared layer (eps 2e-5, PyTorch momentum 0.9), heads
#: initialised as ``weights_init``, Adam lr 3e-3 with weight decay 5e-4 on every
#: parameter, batches of 1024, 100 epochs, patience 200, each task's masked
#: cross-entropy divided by the batch size.
PRESETS: dict[str, dict[str, Any]] = {
    "light": {
        "network": dict(hidden=(256, 64), activation="relu", dropout=0.2, learning_rate=1e-3, batch_size=128,
                        max_epochs=60, patience=5, weight_decay=0.0, loss_normalization="labelled",
                        dtype=np.float32),
        "methods": ("stl_net", "equal", "lbtw0.1", "lbtw0.5", "gradnorm0.1", "gradnorm0.5", "cosine",
                    "stl_logistic", "amtl"),
    },
    "release": {
        "network": dict(hidden=(2000, 2000), activation=("relu", "sigmoid"), dropout=0.25,
                        dropout_position="before", batch_norm=True, bn_momentum=0.9, bn_eps=2e-5,
                        init="release", learning_rate=3e-3, batch_size=1024, max_epochs=100, patience=200,
                        weight_decay=5e-4, decay_all=True, loss_normalization="batch", dtype=np.float32),
        "methods": tuple(METHODS),
    },
}
DEFAULT_METHODS = PRESETS["light"]["methods"]
