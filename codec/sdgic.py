"""SDGIC: image ↔ three guidance streams (caption, HCI, RSRT) ↔ image, through DPCD.

    codec = SDGIC.from_pretrained("scenes-64")          # shipped preset, or a local folder
    enc = codec.encode(image, caption="a red star ...")  # EncodedImage (codec.container)
    enc.save("img.sdg")
    rec = codec.decode(enc.without("hci"))               # any subset of streams / tokens

A preset folder holds ``preset.json`` (its keys: :mod:`codec.preset`) and the DPCD modules:

    unet/             UNet2DConditionModel (required)
    controlnet/       ControlNetModel: the HCI path (optional: without it HCI is not used)
    rsrt_encoder/     RSRTEncoder + rsrt_embedding/ RSRTEmbedding (optional: no RSRT stream)
    text_encoder/ + tokenizer/   any transformers text encoder (optional: offline MiniLM)
    vae/              AutoencoderKL (optional): the UNet works in its latent space, as in
                      Stable Diffusion 2.1 (a unet/ + controlnet/ + vae/ + text_encoder/ +
                      tokenizer/ folder loads as it is); without it, space-to-depth pixels

The container's preset id is ``"<preset>:<hci rate point>"`` (e.g. ``scenes-64:mid``): the
decoder needs to know which HCI model made the HCI bytes, and the header carries that for
free (header bytes are not payload; the simulator sends only the streams).

Any image size and mode. ``"size": "square"`` (the scene presets): the encoder resizes to
the preset's square resolution (the HCI stream stores the original size, the container
too), the decoder draws at that resolution and resizes back to the original size.
``"size": "native"`` (photos): the HCI codes the whole image at its own size, the image is
covered by overlapping tiles of ``resolution``² (:class:`~codec.dpcd.tiles.TileGrid` on the
image padded to a multiple of the model space's factor), each tile gets its own RSRT tokens
(``num_tokens`` per tile, tile by tile: a lost token degrades its tile only), and the decoder
draws the whole image at once, blending the tiles' predictions at every step
(:meth:`~codec.dpcd.decoder.DPCDSampler.sample_tiled`).
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel

from codec.container import ContainerError, EncodedImage
from codec.dpcd.decoder import DPCDSampler, LatentSpace, PixelSpace, bf16_is_fast
from codec.dpcd.rsrt import RSRTEmbedding, RSRTEncoder
from codec.dpcd.tiles import TileGrid
from codec.errors import PresetMismatchError
from codec.image_io import to_rgb_uint8
from codec.preset import PRESET_FILE, SIZES, DecodeSettings, Preset, check_caption_detail
from codec.streams.caption_coder import CaptionCoder
from codec.streams.hci import HCICodec
from codec.text_encoder import TextEncoder, default_text_encoder

WEIGHTS = Path(__file__).parent / "weights"


def preset_folder(name_or_path: str | Path) -> Path:
    """A shipped preset name (``scenes-64``) or a folder path → the folder."""
    p = Path(name_or_path)
    if (p / PRESET_FILE).is_file():
        return p
    if (WEIGHTS / str(name_or_path) / PRESET_FILE).is_file():
        return WEIGHTS / str(name_or_path)
    shipped = sorted(d.name for d in WEIGHTS.iterdir() if (d / PRESET_FILE).is_file())
    raise FileNotFoundError(f"preset {str(name_or_path)!r} not found: expected a folder with "
                            f"{PRESET_FILE} or one of the shipped presets {shipped}")


def preset_hci(folder: str | Path, cfg: Preset | None = None) -> dict[str, HCICodec]:
    """The HCI rate points of a preset folder, in ``preset.json`` order (rate -> codec)."""
    cfg = cfg if cfg is not None else Preset.load(folder)
    root = cfg.path(cfg.hci_root)
    return {p: HCICodec.from_pretrained(root / p) for p in cfg.rate_points}


@dataclass
class SDGIC:
    """The codec. Build it with :meth:`from_pretrained`; the fields are its parts.

    ``rate``: the HCI rate point used by ``encode`` (one of ``hci`` keys); ``num_tokens``:
    RSRT tokens sent (a prefix of the K the encoder makes; None: all); ``decode_settings``:
    how ``decode`` draws unless told otherwise (steps, guidance, precision: a
    :class:`~codec.preset.DecodeSettings`; ``codec.steps`` etc. read it);
    ``caption_detail``: what the captions this decoder was trained on state (``"full"`` or
    ``"layout"``, see ``Scene.describe``): a sender captions scenes with
    ``scene.describe(codec.caption_detail)`` or ``SceneCaptioner(detail=codec.caption_detail)``.
    ``caption_stream``: False for a decoder trained without captions (``photos-64``): ``encode``
    then refuses a caption, and senders send none.
    """

    preset: str
    resolution: int
    unet: UNet2DConditionModel
    text_encoder: TextEncoder
    caption_coder: CaptionCoder
    hci: dict[str, HCICodec]
    rate: str
    controlnet: ControlNetModel | None = None
    rsrt_encoder: RSRTEncoder | None = None
    rsrt_embedding: RSRTEmbedding | None = None
    decode_settings: DecodeSettings = field(default_factory=DecodeSettings)
    num_tokens: int | None = None
    caption_detail: str = "full"
    caption_stream: bool = True
    card: dict = field(default_factory=dict)
    folder: Path | None = None       # the preset folder it was loaded from (data beside it)
    hci_slice_rows: int | None = None
    vae: AutoencoderKL | None = None
    size: str = "square"
    tile_overlap: int = 16

    def __post_init__(self):
        if self.rate not in self.hci:
            raise ValueError(f"rate={self.rate!r} is not an HCI rate point of preset "
                             f"{self.preset!r}; expected one of {list(self.hci)}")
        if (self.rsrt_encoder is None) != (self.rsrt_embedding is None):
            raise ValueError("rsrt_encoder and rsrt_embedding come together (both or neither)")
        check_caption_detail(self.caption_detail)
        if not isinstance(self.decode_settings, DecodeSettings):
            raise TypeError(f"decode_settings={self.decode_settings!r}; expected a "
                            "codec.preset.DecodeSettings")
        if self.num_tokens is not None and not 0 <= self.num_tokens <= self.max_tokens:
            raise ValueError(f"num_tokens={self.num_tokens} must be in [0, {self.max_tokens}]")
        self.space = LatentSpace(self.vae) if self.vae is not None else PixelSpace()
        if self.resolution % self.space.factor:
            raise ValueError(f"resolution={self.resolution} must be a multiple of the model "
                             f"space's factor {self.space.factor}")
        if self.size not in SIZES:
            raise ValueError(f"size={self.size!r}; expected one of {SIZES}")
        if self.size == "native":
            f, tile = self.space.factor, self.unet.config.sample_size * self.space.factor
            if self.resolution != tile:
                raise ValueError(f"size='native' draws in tiles of the UNet's size: resolution "
                                 f"must be {tile}, got {self.resolution}")
            if (isinstance(self.tile_overlap, bool) or not isinstance(self.tile_overlap, int)
                    or self.tile_overlap % f or not 0 <= self.tile_overlap < tile):
                raise ValueError(f"tile_overlap={self.tile_overlap!r} must be a multiple of {f} "
                                 f"in [0, {tile - f}]")
        self.sliced = None
        if self.hci_slice_rows is not None:
            from codec.streams.hci_sliced import SlicedHCI

            if self.size != "native":
                raise ValueError("hci_slice_rows needs size='native' (sliced photo HCI)")
            self.sliced = {r: SlicedHCI(c, self.hci_slice_rows) for r, c in self.hci.items()}
        self.sampler = DPCDSampler(self.unet, self.text_encoder, self.controlnet,
                                   self.rsrt_embedding, space=self.space)

    # -- loading ----------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path = "scenes-64", rate: str | None = None,
                        **overrides) -> "SDGIC":
        """Load a shipped preset by name or a preset folder (see the module docstring)."""
        folder = preset_folder(name_or_path)
        cfg = Preset.load(folder)
        modules = cfg.path(cfg.modules)
        if not (modules / "unet" / "config.json").is_file():
            raise FileNotFoundError(f"preset folder {folder} has no unet/ (config.json + "
                                    f"weights) in {modules}; train one with `sdgic train prior`")
        f32 = dict(torch_dtype=torch.float32)
        unet = UNet2DConditionModel.from_pretrained(modules / "unet", **f32).eval()
        controlnet = (ControlNetModel.from_pretrained(modules / "controlnet", **f32).eval()
                      if (modules / "controlnet" / "config.json").is_file() else None)
        rsrt_enc = rsrt_emb = None
        if (modules / "rsrt_encoder" / "config.json").is_file():
            rsrt_enc = RSRTEncoder.from_pretrained(modules / "rsrt_encoder", **f32).eval()
            rsrt_emb = RSRTEmbedding.from_pretrained(modules / "rsrt_embedding", **f32).eval()
        vae = (AutoencoderKL.from_pretrained(modules / "vae", **f32).eval()
               if (modules / "vae" / "config.json").is_file() else None)
        if (modules / "text_encoder" / "config.json").is_file():
            tok = modules / "tokenizer" if (modules / "tokenizer").is_dir() else None
            text = TextEncoder(modules / "text_encoder", tokenizer_path=tok)
        else:
            text = default_text_encoder()
        hci = preset_hci(folder, cfg)
        coder = CaptionCoder.load(cfg.path(cfg.caption_model) if cfg.caption_model else None)
        card_path = folder / "model_card.json"
        decode = cfg.decode
        changes = {k: overrides.pop(k) for k in ("steps", "guidance_scale", "guidance_interval",
                                                  "precision", "strength") if k in overrides}
        if "precision" not in changes:
            decode = decode.updated(precision=_machine_precision(decode.precision, folder))
        kw = dict(preset=cfg.name, resolution=cfg.resolution, unet=unet,
                  text_encoder=text, caption_coder=coder, hci=hci,
                  rate=rate or cfg.default_rate,
                  controlnet=controlnet, rsrt_encoder=rsrt_enc, rsrt_embedding=rsrt_emb,
                  decode_settings=decode.updated(**changes),
                  caption_detail=cfg.caption_detail, caption_stream=cfg.caption_stream,
                  num_tokens=cfg.num_tokens,
                  card=json.loads(card_path.read_text()) if card_path.is_file() else {},
                  vae=vae, size=cfg.size, tile_overlap=cfg.tile_overlap, folder=folder,
                  hci_slice_rows=cfg.hci_slice_rows)
        k = 0 if rsrt_enc is None else int(rsrt_enc.config.num_tokens)
        if kw["num_tokens"] is not None and kw["num_tokens"] > k:
            raise ValueError(f"{folder / PRESET_FILE}: num_tokens={kw['num_tokens']} but " + (
                f"its rsrt_encoder makes K={k} tokens" if k else "the preset has no RSRT path"))
        kw.update(overrides)
        return cls(**kw)

    # -- properties -------------------------------------------------------------------------

    @property
    def steps(self) -> int:
        return self.decode_settings.steps

    @property
    def guidance_scale(self) -> float:
        return self.decode_settings.guidance_scale

    @property
    def guidance_interval(self) -> tuple[float, float]:
        return self.decode_settings.guidance_interval

    @property
    def precision(self) -> str:
        return self.decode_settings.precision

    @property
    def max_tokens(self) -> int:
        """K, the RSRT tokens the encoder makes (0 without an RSRT path)."""
        return 0 if self.rsrt_encoder is None else int(self.rsrt_encoder.config.num_tokens)

    @property
    def tokens_sent(self) -> int:
        """RSRT tokens ``encode`` sends by default: ``num_tokens``, or all K when it is None."""
        return self.max_tokens if self.num_tokens is None else self.num_tokens

    @property
    def token_bits(self) -> int:
        """Bits per RSRT token on the wire (0 without an RSRT path)."""
        return 0 if self.rsrt_encoder is None else self.rsrt_encoder.fsq.bits

    def tile_grid(self, height: int, width: int) -> TileGrid:
        """Native size: the tiles (in model-space pixels) of an image of ``height`` ×
        ``width`` pixels, padded to a multiple of the model space's factor."""
        f = self.space.factor
        return TileGrid(-(-height // f), -(-width // f), self.unet.config.sample_size,
                        self.tile_overlap // f)

    def max_tokens_for(self, height: int, width: int) -> int:
        """RSRT tokens an image of this size can carry: K, or K per tile in native size."""
        if self.size == "native" and self.max_tokens:
            return self.max_tokens * len(self.tile_grid(height, width))
        return self.max_tokens

    def _pad_to_grid(self, x: torch.Tensor, grid: TileGrid) -> torch.Tensor:
        """float (1, 3, h, w) → (1, 3, H, W): replicate-padded to the grid's canvas."""
        f = self.space.factor
        ph, pw = grid.padded_size
        return F.pad(x, (0, pw * f - x.shape[-1], 0, ph * f - x.shape[-2]), mode="replicate")

    def _tile_tokens(self, x: torch.Tensor, hci: torch.Tensor, grid: TileGrid,
                     pooled: torch.Tensor) -> torch.Tensor:
        """Native size: every tile's K codes, long (n_tiles, K), from the padded image and
        HCI float (1, 3, H, W)."""
        f, side = self.space.factor, self.resolution
        codes = []
        crops = [(y * f, x_ * f) for y, x_ in grid.corners]
        for s in range(0, len(crops), 32):
            part = crops[s:s + 32]
            xs = torch.cat([x[..., y:y + side, c:c + side] for y, c in part])
            hs = torch.cat([hci[..., y:y + side, c:c + side] for y, c in part])
            codes.append(self.rsrt_encoder.encode(xs, hs, pooled.expand(len(part), -1)))
        return torch.cat(codes)

    def container_preset(self, rate: str | None = None) -> str:
        return f"{self.preset}:{rate or self.rate}"

    # -- encoding ---------------------------------------------------------------------------

    def _working(self, rgb: np.ndarray) -> torch.Tensor:
        """uint8 (H, W, 3) → float (1, 3, R, R) at the preset resolution."""
        x = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None].float() / 255.0
        if x.shape[-2:] != (self.resolution, self.resolution):
            x = F.interpolate(x, size=(self.resolution,) * 2, mode="bicubic", antialias=True,
                              align_corners=False).clamp(0, 1)
        return x

    @torch.no_grad()
    def encode(self, image, caption: str | None = None, rate: str | None = None,
               num_tokens: int | None = None) -> EncodedImage:
        """Image (any size ≥ 2×2, any mode; see ``to_rgb_uint8``) → :class:`EncodedImage`.

        ``caption``: the text to send (None: no caption stream). ``rate``: HCI rate point
        (default ``self.rate``). ``num_tokens``: RSRT tokens to send, a prefix of the K the
        encoder makes (None: ``self.num_tokens``, the preset's, which is all K when it too is
        None; pass ``self.max_tokens`` for all K; 0: no RSRT stream).
        """
        rgb = to_rgb_uint8(image)
        h, w = rgb.shape[:2]
        rate = rate or self.rate
        if rate not in self.hci:
            raise ValueError(f"rate={rate!r}; expected one of {list(self.hci)}")
        if caption is not None and not self.caption_stream:
            raise ValueError(f"preset {self.preset!r} was trained without captions "
                             "(caption_stream: false): encode with caption=None")
        hci_codec = self.hci[rate]
        slices = self.sliced[rate].encode(rgb) if self.sliced is not None else None
        hci_bytes = hci_codec.encode(rgb) if slices is None else None
        cap_bytes = self.caption_coder.encode(caption) if caption is not None else None
        n = self.tokens_sent if num_tokens is None else num_tokens
        if not 0 <= n <= self.max_tokens:
            raise ValueError(f"num_tokens={n} must be in [0, {self.max_tokens}] for preset "
                             f"{self.preset!r}")
        tokens = None
        if n > 0:
            pooled = (self.text_encoder.sentence([caption]) if caption is not None
                      else torch.zeros(1, self.text_encoder.dim))
            if self.size == "native":
                grid = self.tile_grid(h, w)
                x = self._pad_to_grid(_to_float(rgb), grid)
                rec = (hci_codec.decode(hci_bytes) if slices is None else
                       self.sliced[rate].decode(slices, h, w)[0])
                hci_img = self._pad_to_grid(_to_float(rec), grid)
                codes = self._tile_tokens(x, hci_img, grid, pooled)[:, :n]
                tokens = tuple(int(c) for c in codes.reshape(-1).tolist())
            else:
                x = self._working(rgb)
                hci_img = torch.from_numpy(hci_codec.decode(hci_bytes, at_working_size=True))
                hci_img = self._working(hci_img.numpy())
                codes = self.rsrt_encoder.encode(x, hci_img, pooled)[0].tolist()
                tokens = tuple(int(c) for c in codes[:n])
        return EncodedImage(preset=self.container_preset(rate), height=h, width=w,
                            caption=cap_bytes, hci=hci_bytes, rsrt_tokens=tokens,
                            hci_slices=tuple(slices) if slices is not None else None,
                            rsrt_bits=self.token_bits if tokens is not None else 0)

    # -- decoding ---------------------------------------------------------------------------

    def _check(self, enc: EncodedImage) -> str:
        """Validate ``enc`` against this preset; returns its HCI rate point."""
        if not isinstance(enc, EncodedImage):
            raise TypeError(f"expected an EncodedImage, got {type(enc).__name__}")
        preset, _, rate = enc.preset.partition(":")
        if preset != self.preset:
            raise PresetMismatchError(f"the image was encoded with preset {preset!r} but this decoder "
                                 f"is preset {self.preset!r}; load {preset!r} to decode it")
        if enc.hci_slices is not None and self.sliced is None:
            raise PresetMismatchError(f"the image carries a sliced HCI but preset "
                                      f"{self.preset!r} sends one HCI stream")
        if enc.has("hci") and rate not in self.hci:
            raise PresetMismatchError(f"HCI rate point {rate!r} of the image is not one of preset "
                                 f"{self.preset!r}'s {list(self.hci)}")
        if enc.rsrt_tokens is not None:
            if self.rsrt_encoder is None:
                raise PresetMismatchError(f"the image carries RSRT tokens but preset {self.preset!r} "
                                     "has no RSRT path")
            most = self.max_tokens_for(enc.height, enc.width)
            per_tile_ok = (self.size != "native"
                           or len(enc.rsrt_tokens) % len(self.tile_grid(enc.height, enc.width)) == 0)
            if len(enc.rsrt_tokens) > most or enc.rsrt_bits != self.token_bits or not per_tile_ok:
                raise PresetMismatchError(f"RSRT stream has {len(enc.rsrt_tokens)} tokens of "
                                     f"{enc.rsrt_bits} bits; preset {self.preset!r} expects up "
                                     f"to {most} of {self.token_bits} bits" + (
                                         " (the same number for each tile)"
                                         if self.size == "native" else ""))
            bad = [t for t in enc.rsrt_tokens
                   if t is not None and t >= self.rsrt_encoder.fsq.codebook_size]
            if bad:
                raise ContainerError(f"RSRT token values {bad[:4]} exceed the codebook "
                                     f"({self.rsrt_encoder.fsq.codebook_size} codes)")
        return rate

    def streams_of(self, enc: EncodedImage) -> dict:
        """What decoding will use: caption text (or None), HCI image (or None), tokens, and
        ``hci_lost_rows``: bool (H,) rows a lost HCI slice influences (None: none lost)."""
        rate = self._check(enc)
        caption = self.caption_coder.decode(enc.caption) if enc.caption is not None else None
        hci, lost_rows = None, None
        if enc.hci_slices is not None:
            if enc.has("hci"):
                hci, mask, lost = self.sliced[rate].decode(enc.hci_slices, enc.height, enc.width)
                lost_rows = mask if lost else None
        elif enc.hci is not None:
            hci = self.hci[rate].decode(enc.hci, at_working_size=self.size != "native")
        return {"caption": caption, "hci": hci, "rsrt_tokens": enc.rsrt_tokens,
                "hci_lost_rows": lost_rows}

    @torch.no_grad()
    def decode_batch(self, encoded: list[EncodedImage], seeds: list[int] | None = None,
                     settings: DecodeSettings | None = None, **changes) -> list[np.ndarray]:
        """Decode images together (one batched denoising loop); each uses only the streams
        and tokens it carries. ``seeds[i]`` fixes image i's starting noise, so a result does
        not depend on the batch it was decoded in. ``settings`` (default: the codec's
        ``decode_settings``) with ``changes`` (``steps=``, ``guidance_scale=``,
        ``guidance_interval=``, ``precision=``, ``strength=``; None keeps the setting; an
        image or tile without its HCI is drawn at strength 1). Returns uint8 (H_i, W_i, 3)
        arrays."""
        settings = (settings or self.decode_settings).updated(**changes)
        if not encoded:
            return []
        seeds = list(seeds) if seeds is not None else [0] * len(encoded)
        if len(seeds) != len(encoded):
            raise ValueError(f"got {len(seeds)} seeds for {len(encoded)} images")
        if self.size == "native":
            return [self._decode_native(e, sd, settings) for e, sd in zip(encoded, seeds)]
        parts = [self.streams_of(e) for e in encoded]
        r = self.resolution
        b = len(parts)
        hci = torch.zeros(b, 3, r, r)
        hci_present = torch.zeros(b, dtype=torch.bool)
        for i, p in enumerate(parts):
            if p["hci"] is not None:
                hci[i] = self._working(p["hci"])[0]
                hci_present[i] = True
        use_hci = self.controlnet is not None and bool(hci_present.any())
        codes = present = None
        if self.rsrt_embedding is not None:
            k = self.max_tokens
            codes = torch.zeros(b, k, dtype=torch.long)
            present = torch.zeros(b, k, dtype=torch.bool)
            for i, p in enumerate(parts):
                for j, t in enumerate(p["rsrt_tokens"] or ()):
                    if t is not None:
                        codes[i, j], present[i, j] = t, True
        side = r // self.space.factor
        noise = torch.stack([torch.randn(self.unet.config.in_channels, side, side,
                                         generator=torch.Generator().manual_seed(int(s)))
                             for s in seeds])
        # below strength 1 an image starts from its noised HCI: those without one are drawn
        # apart, at strength 1 (each image's noise is its own, so the split changes nothing else)
        out = torch.zeros(b, 3, r, r)
        lacking = ~hci_present if use_hci else torch.ones(b, dtype=torch.bool)
        groups = [(torch.arange(b), settings)] if settings.strength == 1 else [
            (torch.nonzero(~lacking).flatten(), settings),
            (torch.nonzero(lacking).flatten(), settings.updated(strength=1.0))]
        for idx, st in groups:
            if len(idx) == 0:
                continue
            sub = lambda x: None if x is None else x[idx]  # noqa: E731
            out[idx] = self.sampler.sample(
                [parts[i]["caption"] for i in idx.tolist()], size=r,
                hci=sub(hci) if use_hci else None,
                hci_present=sub(hci_present) if use_hci else None,
                rsrt_codes=sub(codes), rsrt_present=sub(present), noise=noise[idx],
                **dataclasses.asdict(st))
        images = []
        for i, e in enumerate(encoded):
            x = out[i:i + 1]
            if (e.height, e.width) != (r, r):
                x = F.interpolate(x, size=(e.height, e.width), mode="bicubic",
                                  align_corners=False).clamp(0, 1)
            images.append((x[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy())
        return images

    def _decode_native(self, enc: EncodedImage, seed: int,
                       settings: DecodeSettings) -> np.ndarray:
        """One image at its own size, drawn in blended tiles (see the module docstring)."""
        p = self.streams_of(enc)
        grid = self.tile_grid(enc.height, enc.width)
        f, n = self.space.factor, len(grid)
        hci, hci_present = None, True
        if p["hci"] is not None and self.controlnet is not None:
            hci = self._pad_to_grid(_to_float(p["hci"]), grid)
            if p["hci_lost_rows"] is not None:   # tiles a lost slice reaches draw without it
                lost = np.flatnonzero(p["hci_lost_rows"])
                hci_present = torch.tensor([not ((lost >= y * f) & (lost < (y + grid.tile) * f)
                                                 ).any() for y, _ in grid.corners])
        codes = present = None
        if self.rsrt_embedding is not None:
            k = self.max_tokens
            codes = torch.zeros(n, k, dtype=torch.long)
            present = torch.zeros(n, k, dtype=torch.bool)
            toks = p["rsrt_tokens"] or ()
            per = len(toks) // n
            for i, t in enumerate(toks):
                if t is not None:
                    codes[i // per, i % per], present[i // per, i % per] = t, True
        ph, pw = grid.padded_size
        noise = torch.randn(1, self.unet.config.in_channels, ph, pw,
                            generator=torch.Generator().manual_seed(int(seed)))
        if hci is None or not bool(torch.as_tensor(hci_present).all()):
            settings = settings.updated(strength=1.0)   # no noised HCI to start from
        out = self.sampler.sample_tiled(
            p["caption"], ph * f, pw * f, overlap=self.tile_overlap, hci=hci,
            hci_present=hci_present, rsrt_codes=codes,
            rsrt_present=present, noise=noise, **dataclasses.asdict(settings))
        x = out[0, :, :enc.height, :enc.width]
        return (x.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()

    def decode(self, encoded: EncodedImage, seed: int = 0,
               settings: DecodeSettings | None = None, **changes) -> np.ndarray:
        """One image: uint8 (H, W, 3) at the original size, from whatever streams it carries
        (``settings`` and ``changes`` as in :meth:`decode_batch`)."""
        return self.decode_batch([encoded], [seed], settings, **changes)[0]

    # -- saving ------------------------------------------------------------------------------

    def preset_config(self, hci_root: str = "hci") -> Preset:
        """This codec's ``preset.json`` contents (HCI rate points under ``hci_root``)."""
        return Preset(name=self.preset, resolution=self.resolution, hci_root=hci_root,
                      rate_points=tuple(self.hci), default_rate=self.rate,
                      decode=self.decode_settings,
                      caption_model=None if self.caption_coder.is_default else "caption_model.json",
                      caption_detail=self.caption_detail, caption_stream=self.caption_stream,
                      num_tokens=self.num_tokens, size=self.size, tile_overlap=self.tile_overlap,
                      hci_slice_rows=self.hci_slice_rows)

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write a self-contained preset folder that :meth:`from_pretrained` loads to the same
        codec (same bytes out of ``encode``, same images out of ``decode``): the DPCD modules,
        every HCI rate point under ``hci/`` (a variable-rate HCI's shared weights are written
        once per point), a non-default caption model and text encoder, ``preset.json`` and the
        model card."""
        folder = Path(folder)
        cfg = self.preset_config()
        write_preset(folder, cfg, self.unet, controlnet=self.controlnet,
                     rsrt_encoder=self.rsrt_encoder, rsrt_embedding=self.rsrt_embedding,
                     vae=self.vae)
        for rate, codec in self.hci.items():
            codec.save_pretrained(folder / cfg.hci_root / rate)
        if cfg.caption_model:
            self.caption_coder.save(folder / cfg.caption_model)
        if not self.text_encoder.is_default:
            self.text_encoder.model.save_pretrained(folder / "text_encoder")
            self.text_encoder.tokenizer.save_pretrained(folder / "tokenizer")
        if self.card:
            (folder / "model_card.json").write_text(json.dumps(self.card, indent=2) + "\n")
        return folder


def _to_float(rgb: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) → float (1, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255.0


def _machine_precision(value: str, folder: Path) -> str:
    """A preset's ``precision`` on this machine: ``"bf16"`` falls back to fp32 (with a warning)
    where bf16 would only be emulated (slower than fp32 there)."""
    if value == "bf16" and not bf16_is_fast("cpu"):
        warnings.warn(f"preset {folder.name} decodes in bf16 but this CPU has no native bf16 "
                      "(AVX512-BF16/AMX); decoding in fp32 instead", stacklevel=3)
        return "fp32"
    return value


def write_preset(folder: str | Path, preset: Preset, unet: UNet2DConditionModel,
                 controlnet: ControlNetModel | None = None, rsrt_encoder: RSRTEncoder | None = None,
                 rsrt_embedding: RSRTEmbedding | None = None,
                 vae: AutoencoderKL | None = None) -> Path:
    """Save DPCD modules and ``preset`` as ``preset.json`` into ``folder`` (loadable by
    ``SDGIC.from_pretrained`` when ``preset``'s HCI root holds its rate points)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, m in (("unet", unet), ("controlnet", controlnet), ("rsrt_encoder", rsrt_encoder),
                    ("rsrt_embedding", rsrt_embedding), ("vae", vae)):
        if m is not None:
            m.save_pretrained(folder / name)
    preset.save(folder)
    return folder
