"""A small real codec for simulator tests and for runs without a DPCD preset.

``BaselineCodec`` makes the same three streams as SDGIC with real coders and a trivial decoder:

* caption: the project's caption coder (``codec.streams.CaptionCoder``);
* HCI: the shipped CompressAI HCI model (``codec/weights/hci-64/<rate>``);
* RSRT: 9 tokens, the mean colour of each cell of a 3×3 grid quantized to 3 bits per channel
  (9 bits per token).

Decoding uses the HCI if it arrived; otherwise it paints each grid cell with its token's
colour (mid grey for a lost token). It is a baseline, not SDGIC: use it to exercise the
simulator (``codec = "sim.baseline_codec:BaselineCodec"``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from codec.container import EncodedImage
from codec.errors import CorruptStreamError

__all__ = ["BaselineCodec"]

_GRID = 3
_BITS = 3          # per colour channel
_HCI_ROOT = Path(__file__).resolve().parent.parent / "codec" / "weights" / "hci-64"


class BaselineCodec:
    """Caption + HCI + colour-grid tokens; decoder: HCI, else token colours."""

    def __init__(self, rate: str = "mid"):
        from codec.streams.caption_coder import CaptionCoder
        from codec.streams.hci import HCICodec

        self.rate = rate
        self.preset = f"baseline-hci-{rate}"
        self.caption_coder = CaptionCoder.load()
        self.hci = HCICodec.from_pretrained(_HCI_ROOT / rate)
        # what tells these weights apart (sim.codec_api.codec_fingerprint): the HCI files
        h = hashlib.blake2b(f"baseline-v1-{_GRID}-{_BITS}-{rate}".encode(), digest_size=12)
        for p in sorted((_HCI_ROOT / rate).rglob("*")):
            if p.is_file():
                st = p.stat()
                h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns};".encode())
        self.fingerprint = h.hexdigest()

    def encode(self, image: np.ndarray, caption: str | None = None) -> EncodedImage:
        h, w = image.shape[:2]
        tokens = []
        for r in range(_GRID):
            for c in range(_GRID):
                cell = image[r * h // _GRID:(r + 1) * h // _GRID,
                             c * w // _GRID:(c + 1) * w // _GRID].reshape(-1, 3).mean(0)
                q = np.clip((cell / 256.0 * (1 << _BITS)).astype(int), 0, (1 << _BITS) - 1)
                tokens.append(int((q[0] << 2 * _BITS) | (q[1] << _BITS) | q[2]))
        return EncodedImage(preset=self.preset, height=h, width=w,
                            caption=self.caption_coder.encode(caption) if caption else None,
                            hci=self.hci.encode(image), rsrt_tokens=tuple(tokens),
                            rsrt_bits=3 * _BITS)

    def decode(self, encoded: EncodedImage, seed: int = 0) -> np.ndarray:
        h, w = encoded.height, encoded.width
        if encoded.hci is not None:
            try:
                return self.hci.decode(encoded.hci)
            except CorruptStreamError:
                pass   # corrupt HCI bytes: fall back to the tokens
        out = np.full((h, w, 3), 128, np.uint8)
        m = (1 << _BITS) - 1
        for i, t in enumerate(encoded.rsrt_tokens or ()):
            if t is None:
                continue
            r, c = divmod(i, _GRID)
            rgb = [((t >> s) & m) * 256 // (1 << _BITS) + 16 for s in (2 * _BITS, _BITS, 0)]
            out[r * h // _GRID:(r + 1) * h // _GRID, c * w // _GRID:(c + 1) * w // _GRID] = rgb
        return out
