"""Sliced HCI: the highly compressed image as independently decodable bands of latent rows.

A photo's HCI is split into slices so the simulator can send each as its own packet: slice i
holds latent rows ``[i·k, min((i+1)·k, h))`` (``k = slice_rows``, even) of the gained
mean-scale latent, with the side information z of those rows only (the hyper transforms run
on the band alone, so the decoder rebuilds the entropy model from the slice's own bytes). Each
slice is its own rANS stream (``hci.RansEncoder``) ending in ``check_bits`` of a hash of its
decoded values. The image size is not in the slices: the container carries it.

Decoding takes any subset. A lost, truncated or corrupt slice (its rANS state does not
return to zero, an escape code is impossible or its check value differs) decodes as a band of
zero latents, and ``decode`` returns a mask of the pixel rows that slice influences: the band
itself plus ``margin_px`` rows on each side (the synthesis transform's reach, ``2·(2**depth −
1)`` pixels for its 5×5 stride-2 layers). Every pixel outside the masked rows of lost slices is
bit-identical to the decode with every slice present.

The analysis transform runs on the whole image (only the encoder needs it), so slicing costs
only the side information at band edges, each slice's byte rounding and its check bits, not a
worse latent.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch

from codec.errors import CorruptStreamError
from codec.image_io import to_rgb_uint8
from codec.streams.hci import HCICodec, RansDecoder, RansEncoder, _deterministic, _RecordingDecoder


class SliceError(CorruptStreamError):
    """One HCI slice is corrupt or truncated (its region is decoded as lost)."""


class SlicedHCI:
    """Image ↔ list of HCI slice bytes, for a variable-rate mean-scale ``HCICodec`` in
    ``fit="pad"``.

    Parameters
    ----------
    codec : HCICodec
        Its model must be ``HCIGainedMeanScale`` (``push_band`` / ``pop_band``).
    slice_rows : int
        Latent rows per slice (even, ≥ 2): ``slice_rows · 2**depth`` pixel rows.
    check_bits : int
        0–16 bits of hash per slice (a corrupt slice is detected with probability 1 − 2⁻ᵏ
        beyond the rANS end check; the container adds a CRC32 per slice).
    """

    def __init__(self, codec: HCICodec, slice_rows: int = 4, check_bits: int = 8):
        if not hasattr(codec.model, "push_band") or codec.fit != "pad":
            raise ValueError("SlicedHCI needs an HCICodec with fit='pad' and a "
                             "'gained-meanscale' model (arch of the photos HCI)")
        if slice_rows < 2 or slice_rows % 2:
            raise ValueError(f"slice_rows={slice_rows} must be an even number ≥ 2 (latent "
                             "rows per slice; the side information halves them)")
        if not 0 <= int(check_bits) <= 16:
            raise ValueError(f"check_bits={check_bits} must be in 0..16")
        self.codec, self.slice_rows, self.check_bits = codec, int(slice_rows), int(check_bits)

    @property
    def model(self):
        return self.codec.model

    @property
    def margin_px(self) -> int:
        """Pixel rows beyond its band that a lost slice can change (synthesis reach)."""
        return 2 * (self.model.downsampling - 1)

    def latent_shape(self, height: int, width: int) -> tuple[int, int]:
        d = self.model.downsampling
        return -(-height // d), -(-width // d)

    def num_slices(self, height: int, width: int) -> int:
        """Slices of an image of ``height`` × ``width`` pixels."""
        return -(-self.latent_shape(height, width)[0] // self.slice_rows)

    def slice_rows_px(self, i: int, height: int) -> tuple[int, int]:
        """Pixel rows [start, stop) of slice ``i``'s band in the image (before the margin)."""
        d = self.model.downsampling
        return min(height, i * self.slice_rows * d), min(height, (i + 1) * self.slice_rows * d)

    def _check(self, values: list[int], index: int) -> int:
        data = np.asarray([index] + values, dtype=np.int64).tobytes()
        return zlib.crc32(data) & ((1 << self.check_bits) - 1)

    # ---- coding --------------------------------------------------------------------------
    def encode(self, image) -> list[bytes]:
        """Any image (``codec.image_io.to_rgb_uint8``) → one bytes string per slice, top to bottom."""
        rgb = to_rgb_uint8(image)
        with _deterministic():
            x = self.codec._to_model_input(rgb)
            y = self.model._analyse(x)["y"]
        out = []
        for i in range(-(-y.shape[-2] // self.slice_rows)):
            band = y[..., i * self.slice_rows:(i + 1) * self.slice_rows, :]
            enc = RansEncoder()
            with _deterministic():
                self.model.push_band(enc, band)
            if self.check_bits:
                values = [op[1] for op in enc._ops]
                enc.bits(self._check(values, i), self.check_bits)
            out.append(enc.to_bytes())
        return out

    def _decode_band(self, data: bytes, index: int, shape) -> torch.Tensor:
        try:
            dec = RansDecoder(data)
            log = _RecordingDecoder(dec) if self.check_bits else dec
            with _deterministic():
                y = self.model.pop_band(log, shape)
            if self.check_bits and dec.bits(self.check_bits) != self._check(log.values, index):
                raise CorruptStreamError("check value mismatch")
            dec.finish()
        except CorruptStreamError as e:  # anything else is a bug and propagates
            raise SliceError(f"HCI slice {index} is corrupt: {e}") from None
        return y

    def decode(self, slices, height: int, width: int):
        """Slices (bytes, or None where lost; as many as ``num_slices``) → (uint8 (H, W, 3),
        bool (H,) mask of the rows that lost or corrupt slices influence, list of the indices
        of slices decoded as lost)."""
        n = self.num_slices(height, width)
        slices = list(slices)
        if len(slices) != n:
            raise ValueError(f"{len(slices)} slices given; an image of {height}×{width} has {n} "
                             f"(slice_rows={self.slice_rows})")
        h, w = self.latent_shape(height, width)
        y = torch.zeros(1, self.model.M, h, w)
        lost = []
        for i, data in enumerate(slices):
            r0, r1 = i * self.slice_rows, min(h, (i + 1) * self.slice_rows)
            if data is not None:
                try:
                    y[..., r0:r1, :] = self._decode_band(data, i, (r1 - r0, w))
                    continue
                except SliceError:
                    pass
            lost.append(i)
        with _deterministic():
            x_hat = self.model.synthesize(y).clamp_(0, 1)[..., :height, :width]
            img = (x_hat[0].permute(1, 2, 0) * 255.0).round().to(torch.uint8).numpy()
        mask = np.zeros(height, bool)
        for i in lost:
            a, b = self.slice_rows_px(i, height)
            mask[max(0, a - self.margin_px):min(height, b + self.margin_px)] = True
        return np.ascontiguousarray(img), mask, lost

    def slicing_cost(self, image) -> dict:
        """Bits of the sliced stream against one stream of the same latent (``HCICodec``),
        for the same image: ``{"sliced_bits", "single_bits", "slices", "overhead"}``."""
        slices = self.encode(image)
        sliced = sum(8 * len(s) for s in slices)
        single = 8 * len(self.codec.encode(image))  # includes its 33-bit size header
        return {"sliced_bits": sliced, "single_bits": single, "slices": len(slices),
                "overhead": sliced / single - 1}

