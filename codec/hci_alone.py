"""The learned HCI alone, decoded without DPCD: the learned separate-coding baseline.

    codec = HCIAlone("scenes-64")                   # the preset's HCI rate points
    enc = codec.encode(image, budget_bits=120)      # the highest rate point within 120 bits
    rec = codec.decode(enc)                         # the HCI decoder's image, at the image size

The HCI bytes are exactly those SDGIC sends for the same image and rate point. A photo HCI
at the image's own size (``fit="pad"``, the gained mean-scale model of
``codec/weights/hci-photos``) is sent as independently decodable slices
(:class:`codec.streams.hci_sliced.SlicedHCI`, bands of 128 pixel rows): the simulator sends
each slice in its own packets, and a lost slice loses only its band (decoded from zero
latents). With a budget,
``encode`` picks the highest rate point whose bytes fit; when none fits nothing is sent and the
image decodes as mid grey (:data:`codec.classical.GREY`), as a lost one does. Without a budget
it uses the preset's default rate point.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .classical import GREY
from .container import EncodedImage
from .errors import CorruptStreamError, PresetMismatchError

__all__ = ["HCIAlone"]


def _weights_hash(codecs: dict) -> str:
    """What tells these HCI weights apart (for simulator cache keys): a hash of every rate
    point's configuration and parameters."""
    import hashlib
    import json

    h = hashlib.blake2b(b"hci-alone-v1", digest_size=12)
    for rate, c in codecs.items():
        h.update(json.dumps([rate, c.config], sort_keys=True, default=str).encode())
        for k, t in c.model.state_dict().items():
            h.update(k.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class HCIAlone:
    """HCI rate points of an SDGIC preset, each image at the best point within its budget.

    Parameters
    ----------
    preset : str or Path
        SDGIC preset name or folder whose HCI rate points are used (only the HCI is loaded),
        or a folder of HCI rate-point folders (each with ``config.json``, e.g.
        ``codec/weights/hci-photos``: the native-size photo HCI; default point: the middle).
    """

    takes_bit_budget = True
    caption_stream = False

    def __init__(self, preset: str = "scenes-64"):
        import json
        from pathlib import Path

        from .preset import PRESET_FILE, Preset
        from .sdgic import preset_folder, preset_hci
        from .streams.hci import HCICodec

        points = sorted((p for p in Path(preset).glob("*/config.json")), key=lambda p: json.loads(
            p.read_text()).get("rate", 0)) if Path(preset).is_dir() else []
        if points and not (Path(preset) / PRESET_FILE).is_file():
            # a folder of HCI rate points (codec/weights/hci-photos), lowest rate first
            self.hci = {p.parent.name: HCICodec.from_pretrained(p.parent) for p in points}
            self.default_rate = list(self.hci)[len(self.hci) // 2]
            name = Path(preset).resolve().name
        else:
            cfg = Preset.load(preset_folder(preset))
            self.hci = preset_hci(cfg.folder, cfg)
            self.default_rate = cfg.default_rate
            name = cfg.name
        self.preset = f"hci-{name}"
        self.sliced = None
        if all(c.fit == "pad" and hasattr(c.model, "push_band") for c in self.hci.values()):
            from .streams.hci_sliced import SlicedHCI

            self.sliced = {r: SlicedHCI(c) for r, c in self.hci.items()}
        self.fingerprint = _weights_hash(self.hci)

    def encode(self, image, caption: Optional[str] = None,
               budget_bits: Optional[int] = None) -> EncodedImage:
        """Image → :class:`EncodedImage` with the HCI of the highest rate point within
        ``budget_bits`` (``None``: the preset's default point)."""
        from .image_io import to_rgb_uint8

        if caption is not None:
            raise ValueError("the HCI alone sends no caption: encode with caption=None")
        img = to_rgb_uint8(image)
        h, w = img.shape[:2]
        if budget_bits is None:
            rates = [self.default_rate]
        elif isinstance(budget_bits, bool) or not isinstance(budget_bits, (int, np.integer)) \
                or budget_bits < 0:
            raise ValueError(f"budget_bits = {budget_bits!r} is not supported; allowed: an "
                             f"integer >= 0 (bits) or None")
        else:
            rates = list(reversed(self.hci))
        for rate in rates:
            if self.sliced is not None:
                slices = self.sliced[rate].encode(img)
                if budget_bits is None or 8 * sum(map(len, slices)) <= budget_bits:
                    return EncodedImage(preset=f"{self.preset}:{rate}", height=h, width=w,
                                        hci_slices=tuple(slices))
                continue
            data = self.hci[rate].encode(img)
            if budget_bits is None or 8 * len(data) <= budget_bits:
                return EncodedImage(preset=f"{self.preset}:{rate}", height=h, width=w, hci=data)
        return EncodedImage(preset=f"{self.preset}:{rates[-1]}", height=h, width=w)

    def _rate(self, encoded: EncodedImage) -> str:
        if not isinstance(encoded, EncodedImage):
            raise TypeError(f"expected an EncodedImage, got {type(encoded).__name__}")
        name, _, rate = encoded.preset.partition(":")
        if name != self.preset or rate not in self.hci:
            raise PresetMismatchError(f"the image was encoded by {encoded.preset!r}; this "
                                      f"decoder is {self.preset!r} with rate points "
                                      f"{list(self.hci)}")
        if encoded.caption is not None or encoded.rsrt_tokens is not None:
            raise CorruptStreamError(f"{self.preset} images carry one stream (hci); this one "
                                     f"has a caption or RSRT tokens")
        return rate

    def decode(self, encoded: EncodedImage, seed: int = 0) -> np.ndarray:
        """uint8 (H, W, 3) at the container's size; mid grey without the stream."""
        rate = self._rate(encoded)
        h, w = encoded.height, encoded.width
        if not encoded.has("hci"):
            return np.full((h, w, 3), GREY, np.uint8)
        if encoded.hci_slices is not None:
            if self.sliced is None:
                raise PresetMismatchError(f"{self.preset} codes whole HCI streams; this image "
                                          f"has slices")
            return self.sliced[rate].decode(encoded.hci_slices, h, w)[0]
        rec = self.hci[rate].decode(encoded.hci)
        if rec.shape[:2] != (h, w):
            from PIL import Image

            rec = np.asarray(Image.fromarray(rec).resize((w, h), Image.BICUBIC))
        return rec

    def streams_of(self, encoded: EncodedImage) -> dict:
        """Validates the stream as the decoder would (raises on a damaged stream)."""
        rate = self._rate(encoded)
        if encoded.hci is not None:      # slices are checked one by one when decoded: a bad
            self.hci[rate].decode(encoded.hci)   # one loses its band only
        return {"hci": encoded.hci, "hci_slices": encoded.hci_slices}

    def encoding_info(self, encoded: EncodedImage) -> dict:
        """``hci_rate``: the rate point used (``""`` when nothing was sent)."""
        return {"hci_rate": encoded.preset.partition(":")[2] if encoded.has("hci") else ""}
