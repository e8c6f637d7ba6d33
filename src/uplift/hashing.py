"""Salted customer-id hashing, shared by experiment assignment and customer targeting.

A leaf module (imports nothing from ``uplift``) so that the optimize layer can order customers the
way :mod:`uplift.experiment.assignment` buckets them without importing the experiment layer.
``uplift.experiment.assignment.hash_values`` re-exports it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd


def hash_values(customer_ids: Sequence[object] | np.ndarray | pd.Series, salt: str) -> np.ndarray:
    """First 8 bytes of ``sha256(f"{salt}:{id}")`` as unsigned 64-bit integers.

    Ids are formatted with ``str``, so ``7`` and ``"7"`` hash alike (``7.0`` does not).
    """
    out = np.empty(len(customer_ids), dtype=np.uint64)
    for i, cid in enumerate(customer_ids):
        digest = hashlib.sha256(f"{salt}:{cid}".encode()).digest()
        out[i] = int.from_bytes(digest[:8], "big")
    return out
