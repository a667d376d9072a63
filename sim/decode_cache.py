"""Reconstructions reused across simulation points: a sweep decodes each distinct input once.

A point's images are decoded from what arrived. Across a sweep the same image, with the same
decoder seed, arrives with the same streams again and again (every SNR where the link is clean,
both policies, both fidelity modes), and the diffusion decoder is by far the slowest part of a
point. :class:`DecodeCache` keys a reconstruction on everything the decoder reads -- the codec's
weights fingerprint, the received encoding (streams, tokens and their bytes), the seed and the
step count -- and decodes only what it has not seen.

Batch invariance: a batched decode can differ from a single-image decode in the last bit of
the floats (kernels chosen by batch size), which after rounding moves a pixel by one level now
and then. A cached result must not depend on which batch first produced it, so the cache
decodes every miss on its own: results are a function of the key alone, in any order, serially
or on any number of workers.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from collections import OrderedDict
from typing import Optional

import numpy as np

__all__ = ["DecodeCache"]


class DecodeCache:
    """In-memory LRU of reconstructions, bounded by ``max_bytes`` (default 512 MiB).

    ``hits`` and ``misses`` count lookups since creation.
    """

    def __init__(self, max_bytes: int = 512 * 2 ** 20):
        if max_bytes <= 0:
            raise ValueError(f"max_bytes={max_bytes} must be positive")
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    @staticmethod
    def key(fingerprint: str, encoded, seed: int, settings: Optional[dict] = None
            ) -> Optional[bytes]:
        """Digest of what the decoder reads: the encoding's canonical bytes (``to_bytes()``,
        as SDGIC's container has) or its pickle, the seed and the decode ``settings``;
        ``None`` when the encoding has neither (such an input is decoded every time)."""
        try:
            to_bytes = getattr(encoded, "to_bytes", None)
            blob = to_bytes() if callable(to_bytes) else pickle.dumps(encoded, protocol=4)
        except (pickle.PicklingError, TypeError, AttributeError):
            return None
        h = hashlib.blake2b(digest_size=20)
        shown = json.dumps({k: list(v) if isinstance(v, tuple) else v
                            for k, v in sorted((settings or {}).items())})
        h.update(f"{fingerprint}|{int(seed)}|{shown}|".encode())
        h.update(blob)
        return h.digest()

    def decode(self, codec, fingerprint: str, encoded: list, seeds: list[int],
               settings: Optional[dict] = None) -> list[np.ndarray]:
        """Reconstructions uint8 (H, W, 3) of ``encoded[i]`` with ``seeds[i]`` and the decode
        ``settings`` (see :func:`sim.codec_api.decode_images`); misses are decoded one image
        at a time (see the module docstring). Returned arrays are read-only views shared with
        the cache."""
        from .codec_api import decode_images

        out: list = []
        for e, s in zip(encoded, seeds):
            k = self.key(fingerprint, e, s, settings)
            if k is not None and k in self._items:
                self._items.move_to_end(k)
                self.hits += 1
                out.append(self._items[k])
                continue
            self.misses += 1
            img = np.asarray(decode_images(codec, [e], [s], 1, settings)[0])
            img.setflags(write=False)
            if k is not None:
                self._put(k, img)
            out.append(img)
        return out

    def _put(self, k: bytes, img: np.ndarray) -> None:
        self._items[k] = img
        self._bytes += img.nbytes
        while self._bytes > self.max_bytes and len(self._items) > 1:
            _, old = self._items.popitem(last=False)
            self._bytes -= old.nbytes

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0
