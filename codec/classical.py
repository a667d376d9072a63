"""Classical image codecs (Pillow JPEG, WebP, AVIF) at a bit budget: the separate
source-coding baseline.

    codec = ClassicalCodec("webp")
    enc = codec.encode(image, budget_bits=2000)     # EncodedImage; its file is <= 2000 bits
    rec = codec.decode(enc)                         # uint8 (H, W, 3) at the image's size

The file (the codec's exact bytes, headers included) travels as the image's one stream, in the
:class:`~codec.container.EncodedImage` ``hci`` slot (the dense image stream the simulator
packetizes and needs whole). ``encode`` searches the quality for the largest file within the
budget at the native size; it also tries bicubic downscales (factors ``2**(k/4)``) and keeps
the candidate with the best PSNR against the source, which is what a sender that knows its
source and budget would pick. The receiver decodes the file and upscales it (bicubic) to the
size in the container header; the scale used is read back from the file
(:meth:`ClassicalCodec.encoding_info`). When not even the smallest file (lowest quality, the
smallest downscale allowed) fits, nothing is sent: the image has no stream and decodes as
mid grey, as a lost one does.
"""

from __future__ import annotations

import io
from typing import Optional

import numpy as np

from .container import EncodedImage
from .errors import CorruptStreamError

__all__ = ["ClassicalCodec", "CLASSICAL_FORMATS", "code_image", "classical_batch", "GREY"]

#: simulator codec name -> (Pillow format, lowest quality, highest quality, save options)
CLASSICAL_FORMATS = {
    "jpeg": ("JPEG", 1, 95, {"optimize": True}),
    "webp": ("WEBP", 0, 100, {"method": 6}),
    "avif": ("AVIF", 0, 100, {"speed": 4}),
}
#: what a receiver shows for an image it could not decode (uint8 grey level)
GREY = 128
_MIN_SIDE = 4            # smallest downscaled side [pixels] the search tries
_STEPS_PER_OCTAVE = 4    # downscale factors 2**(k/4)


def _check_format(name: str) -> tuple:
    if name not in CLASSICAL_FORMATS:
        raise ValueError(f"classical codec {name!r} is not supported; allowed: "
                         f"{', '.join(CLASSICAL_FORMATS)}")
    return CLASSICAL_FORMATS[name]


def code_image(img: np.ndarray, name: str, quality: int, factor: float = 1.0
               ) -> tuple[bytes, np.ndarray]:
    """``img`` uint8 (H, W, 3) through codec ``name`` at ``quality`` after a bicubic
    (antialiased) downscale by ``factor`` (1: native) → (file bytes, decoded uint8 (H, W, 3)
    upscaled back to the original size)."""
    data = _encode_file(img, name, quality, factor)
    return data, _decode_file(data, *img.shape[:2])


def classical_batch(images: np.ndarray, name: str, quality: int) -> tuple[np.ndarray, np.ndarray]:
    """Each uint8 (H, W, 3) image of ``images`` through codec ``name`` at ``quality``, native
    size: bits per image (B,) int and the decoded images uint8 (B, H, W, 3)."""
    coded = [code_image(img, name, quality) for img in images]
    return np.array([8 * len(d) for d, _ in coded]), np.stack([r for _, r in coded])


def _scaled_size(h: int, w: int, factor: float) -> tuple[int, int]:
    return max(1, round(h / factor)), max(1, round(w / factor))


def _encode_file(img: np.ndarray, name: str, quality: int, factor: float) -> bytes:
    from PIL import Image

    fmt, _, _, opts = _check_format(name)
    h, w = img.shape[:2]
    im = Image.fromarray(img)
    if factor != 1:
        sh, sw = _scaled_size(h, w, factor)
        im = im.resize((sw, sh), Image.BICUBIC, reducing_gap=None)
    buf = io.BytesIO()
    im.save(buf, format=fmt, quality=int(quality), **opts)
    return buf.getvalue()


def _decode_file(data: bytes, h: int, w: int) -> np.ndarray:
    from PIL import Image

    try:
        im = Image.open(io.BytesIO(data))
        im = im.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise CorruptStreamError(f"corrupt classical image file ({e})") from None
    if im.size != (w, h):
        im = im.resize((w, h), Image.BICUBIC)
    return np.asarray(im)


def _mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


class ClassicalCodec:
    """JPEG / WebP / AVIF at a bit budget (see the module docstring).

    Parameters
    ----------
    name : "jpeg" | "webp" | "avif"
    downscale : bool
        Try downscaled versions too (default); False: native size only.
    """

    takes_bit_budget = True
    caption_stream = False

    def __init__(self, name: str, downscale: bool = True):
        self.fmt, self.q_lo, self.q_hi, _ = _check_format(name)
        self.name, self.downscale = name, bool(downscale)
        self.preset = f"classical-{name}"
        self.fingerprint = f"{self.preset}-v1-{'down' if downscale else 'native'}"

    def _factors(self, h: int, w: int) -> list[float]:
        out, k = [1.0], 1
        while self.downscale:
            f = 2 ** (k / _STEPS_PER_OCTAVE)
            if min(_scaled_size(h, w, f)) < _MIN_SIDE:
                break
            out.append(f)
            k += 1
        return out

    def _best_quality(self, img, factor: float, budget_bytes: int) -> Optional[tuple]:
        """Highest quality whose file fits ``budget_bytes`` at ``factor``: (quality, bytes) or
        None. File size grows with quality almost everywhere; the search keeps only files it
        checked, so the result always fits."""
        small = _encode_file(img, self.name, self.q_lo, factor)
        if len(small) > budget_bytes:
            return None
        best, lo, hi = (self.q_lo, small), self.q_lo + 1, self.q_hi
        while lo <= hi:
            mid = (lo + hi) // 2
            data = _encode_file(img, self.name, mid, factor)
            if len(data) <= budget_bytes:
                best, lo = (mid, data), mid + 1
            else:
                hi = mid - 1
        return best

    def encode(self, image, caption: Optional[str] = None,
               budget_bits: Optional[int] = None) -> EncodedImage:
        """Image → :class:`EncodedImage` whose one stream is a file of at most
        ``budget_bits`` bits (``None``: the highest quality at the native size). ``caption`` is
        refused: these codecs send none."""
        from .image_io import to_rgb_uint8

        if caption is not None:
            raise ValueError(f"codec {self.name!r} sends no caption: encode with caption=None")
        img = to_rgb_uint8(image)
        h, w = img.shape[:2]
        if budget_bits is None:
            data = _encode_file(img, self.name, self.q_hi, 1.0)
            return EncodedImage(preset=self.preset, height=h, width=w, hci=data)
        if isinstance(budget_bits, bool) or not isinstance(budget_bits, (int, np.integer)) \
                or budget_bits < 0:
            raise ValueError(f"budget_bits = {budget_bits!r} is not supported; allowed: an "
                             f"integer >= 0 (bits) or None")
        budget_bytes = int(budget_bits) // 8
        best, best_mse, misses = None, np.inf, 0
        for f in self._factors(h, w):
            got = self._best_quality(img, f, budget_bytes)
            if got is None:
                continue                # too large even at the lowest quality: smaller next
            err = _mse(img, _decode_file(got[1], h, w))
            if err < best_mse:
                best, best_mse, misses = got[1], err, 0
            else:
                misses += 1
                if misses >= 2:         # quality fell twice in a row: smaller only loses
                    break
        return EncodedImage(preset=self.preset, height=h, width=w, hci=best)

    def decode(self, encoded: EncodedImage, seed: int = 0) -> np.ndarray:
        """uint8 (H, W, 3) at the container's size; mid grey (:data:`GREY`) without the
        stream. A damaged file raises :class:`~codec.errors.CorruptStreamError`."""
        self._check(encoded)
        if encoded.hci is None:
            return np.full((encoded.height, encoded.width, 3), GREY, np.uint8)
        return _decode_file(encoded.hci, encoded.height, encoded.width)

    def streams_of(self, encoded: EncodedImage) -> dict:
        """Validates the stream as the decoder would (raises on a damaged file)."""
        self._check(encoded)
        if encoded.hci is not None:
            _decode_file(encoded.hci, encoded.height, encoded.width)
        return {"hci": encoded.hci}

    def _check(self, encoded) -> None:
        from .errors import PresetMismatchError

        if not isinstance(encoded, EncodedImage):
            raise TypeError(f"expected an EncodedImage, got {type(encoded).__name__}")
        if encoded.preset != self.preset:
            raise PresetMismatchError(f"the image was encoded by {encoded.preset!r}; this "
                                      f"decoder is {self.preset!r}")
        if encoded.caption is not None or encoded.rsrt_tokens is not None:
            raise CorruptStreamError(f"{self.preset} images carry one stream (hci); this one "
                                     f"has a caption or RSRT tokens")

    def encoding_info(self, encoded: EncodedImage) -> dict:
        """``classical_scale``: coded side / original side (1: native; 0: nothing sent or an
        unreadable file), read from the file header."""
        from PIL import Image

        if encoded.hci is None:
            return {"classical_scale": 0.0}
        try:
            w = Image.open(io.BytesIO(encoded.hci)).size[0]
        except (OSError, ValueError, SyntaxError):
            return {"classical_scale": 0.0}
        return {"classical_scale": w / encoded.width}
