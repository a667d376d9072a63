"""HCI stream: the highly compressed image, a learned CompressAI codec with a real rANS bitstream.

Two layers:

- ``HCIFactorized`` / ``HCIHyperprior``: ``compressai.models.CompressionModel`` subclasses (GDN
  analysis/synthesis transforms, stride-2 stages; at ``depth=4`` a 64×64 image becomes a 4×4×M
  latent). CompressAI contract: ``forward(x)`` → ``{"x_hat", "likelihoods"}`` for training,
  ``compress(x)`` → ``{"strings", "shape"}``, ``decompress(strings, shape)`` → ``{"x_hat"}``.
- ``HCICodec``: image in any size and mode → ``bytes`` → image, with
  ``from_pretrained(folder)`` / ``save_pretrained(folder)`` (``config.json`` +
  ``model.safetensors``, never pickles).

Entropy coding. At a budget of ~40 bits per image, CompressAI's bundled rANS (64-bit state,
32-bit words) costs at least 64 bits per string, so the codec uses its own rANS over the same
CompressAI quantized CDFs: an infinite-precision (Python integer) rANS state starting at 0, with
each CDF re-quantized to ``PRECISION`` (12) bits and its slots *spread* over the state range
(as in tANS) instead of contiguous. With contiguous slots the first symbols cost ~log2(2^16)
bits each, a fixed ~12-bit loss per string; spread slots make the whole stream cost about its
ideal information plus byte rounding (≈2 bits measured). Everything (header, hyperprior side
information, latents, optional check bits) shares one rANS state, so a stream is one byte string
with no per-part padding. Table construction is integer/IEEE-exact, so streams are identical
across runs and machines.

Any image size. The codec **resizes** (``fit="resize"``, the default) any H×W ≥ 2×2 image to the
working resolution (``working_size``, 64 for ``scenes-64``), codes it there, and decode resizes
back to the stored original size. Why: the HCI is dense guidance for the DPCD decoder, which runs
at the preset's resolution, and the bit budget (≤ 0.05 bpp in total at that resolution) cannot
pay for full-resolution detail the decoder would throw away; resizing also keeps the HCI's bits
constant per image. ``fit="pad"`` codes at full resolution instead (replicate padding to a
multiple of ``2**depth``, cropped after decoding), for users who want an HCI that scales with
the image. The original size costs 1 bit when it equals the working size (resize mode) and
33 bits otherwise.

Errors. Missing CDFs raise "Run update() first"; malformed streams (wrong length, impossible
escape codes, a final rANS state that is not the initial one, a failed check value) raise
``codec.errors.CorruptStreamError`` (a ``ValueError``). An entropy-coded stream has almost no redundancy, so with ``check_bits=0`` some
corrupted streams decode to a wrong image; ``check_bits=k`` adds a k-bit hash of the decoded
values (detects a corruption with probability 1 - 2^-k), and the SDGIC container adds a CRC32.
"""

from __future__ import annotations

import contextlib
import json
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.layers import GDN
from compressai.models import CompressionModel
from compressai.models.utils import conv, deconv

from codec.errors import CorruptStreamError
from codec.image_io import to_rgb_uint8

PRECISION = 12  # bits of the rANS frequency tables
_M = 1 << PRECISION
_MAX_STREAM_BYTES = 1 << 22  # a stream longer than this is rejected before decoding
_ESCAPE_LEN_BITS = 6  # raw-value length of an escaped symbol, 0..32
_SIZE_BITS = 16  # codec.image_io.MAX_SIDE = 1 << _SIZE_BITS
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


# --------------------------------------------------------------------------------------------
# rANS with spread symbol slots on an unbounded integer state
# --------------------------------------------------------------------------------------------

class SpreadTable:
    """One discrete distribution for the rANS coder: frequencies summing to ``2**PRECISION`` and
    their slots spread evenly over ``[0, 2**PRECISION)``.

    Built from a CompressAI quantized CDF row (``precision_in`` bits, ``length`` entries).
    """

    __slots__ = ("freq", "cum", "flat_slot", "slot_sym", "slot_rank")

    def __init__(self, freq: np.ndarray):
        freq = np.asarray(freq, dtype=np.int64)
        if freq.ndim != 1 or freq.size == 0 or freq.min() < 1 or freq.sum() != _M:
            raise ValueError(f"frequencies must be ≥ 1 and sum to {_M}; got {freq.tolist()}")
        sym = np.repeat(np.arange(freq.size), freq)
        k = np.concatenate([np.arange(f) for f in freq])
        pos = (k + 0.5) / freq[sym]  # IEEE division: exact and reproducible everywhere
        order = np.lexsort((sym, pos))  # slot j holds flat entry order[j]
        cum = np.concatenate([[0], np.cumsum(freq)[:-1]])
        flat_slot = np.empty(_M, np.int64)
        flat_slot[order] = np.arange(_M)
        self.freq = freq.tolist()
        self.cum = cum.tolist()
        self.flat_slot = flat_slot.tolist()
        self.slot_sym = sym[order].tolist()
        self.slot_rank = k[order].tolist()

    @classmethod
    def from_quantized_cdf(cls, cdf, length: int, precision_in: int = 16) -> "SpreadTable":
        cdf = np.asarray(cdf[:length], dtype=np.int64)
        f16 = np.diff(cdf)
        if f16.size > _M:
            raise ValueError(f"a CDF with {f16.size} symbols does not fit {PRECISION}-bit tables")
        f = np.maximum(1, np.rint(f16 * _M / (1 << precision_in)).astype(np.int64))
        f[int(np.argmax(f))] -= int(f.sum()) - _M
        if f.min() < 1:  # only with pathological CDFs: fall back to a flat distribution
            f = np.full(f.size, _M // f.size)
            f[0] += _M - int(f.sum())
        return cls(f)


_BIT_TABLE = SpreadTable(np.array([_M // 2, _M // 2]))


class RansEncoder:
    """Collects symbols in *decode* order; ``to_bytes`` runs rANS over them backwards."""

    def __init__(self):
        self._ops: list[tuple] = []

    def symbol(self, table: SpreadTable, s: int) -> None:
        self._ops.append((table, int(s)))

    def bits(self, value: int, nbits: int) -> None:
        value = int(value)
        if nbits < 0 or value < 0 or value >> nbits:
            raise ValueError(f"value {value} does not fit in {nbits} bits")
        self._ops.append((None, value, nbits))

    def to_bytes(self) -> bytes:
        x = 0
        for op in reversed(self._ops):
            if op[0] is None:
                x = (x << op[2]) | op[1]
            else:
                t, s = op
                f = t.freq[s]
                x = ((x // f) << PRECISION) + t.flat_slot[t.cum[s] + x % f]
        return x.to_bytes((x.bit_length() + 7) // 8, "big")


class RansDecoder:
    """Pops symbols in order from a stream made by ``RansEncoder``; ``finish`` checks the end."""

    def __init__(self, data: bytes):
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ValueError(f"stream must be bytes; got {type(data).__name__}")
        if len(data) > _MAX_STREAM_BYTES:
            raise CorruptStreamError(f"stream of {len(data)} bytes exceeds {_MAX_STREAM_BYTES} "
                                     "bytes")
        data = bytes(data)
        if data[:1] == b"\x00":
            raise CorruptStreamError("corrupt HCI stream: leading zero byte")
        self._x = int.from_bytes(data, "big")

    def symbol(self, table: SpreadTable) -> int:
        x = self._x
        r = x & (_M - 1)
        s = table.slot_sym[r]
        self._x = table.freq[s] * (x >> PRECISION) + table.slot_rank[r]
        return s

    def bits(self, nbits: int) -> int:
        v = self._x & ((1 << nbits) - 1)
        self._x >>= nbits
        return v

    def finish(self) -> None:
        if self._x != 0:
            raise CorruptStreamError("corrupt HCI stream: rANS state did not return to its initial "
                             "value (wrong length or damaged bytes)")


class _LatentCoder:
    """rANS tables for one CompressAI entropy model (EntropyBottleneck or GaussianConditional)."""

    def __init__(self, module):
        for check in ("_check_cdf_size", "_check_cdf_length", "_check_offsets_size"):
            getattr(module, check)()  # "Uninitialized CDFs. Run update() first"
        cdf = module._quantized_cdf.cpu().numpy()
        lengths = module._cdf_length.reshape(-1).cpu().numpy().astype(int)
        self.offsets = module._offset.reshape(-1).cpu().numpy().astype(int).tolist()
        self.max_values = (lengths - 2).tolist()
        self.tables = [SpreadTable.from_quantized_cdf(cdf[i], int(lengths[i]),
                                                      module.entropy_coder_precision)
                       for i in range(cdf.shape[0])]

    def push(self, enc: RansEncoder, symbols, indexes) -> None:
        for s, i in zip(symbols, indexes):
            value = s - self.offsets[i]
            max_value = self.max_values[i]
            raw = None
            if value < 0:
                raw, value = -2 * value - 1, max_value
            elif value >= max_value:
                raw, value = 2 * (value - max_value), max_value
            enc.symbol(self.tables[i], value)
            if raw is not None:
                n = raw.bit_length()
                if n > 32:
                    raise ValueError(f"latent value {s} is out of the codable range")
                enc.bits(n, _ESCAPE_LEN_BITS)
                enc.bits(raw, n)

    def pop(self, dec: RansDecoder, indexes) -> list[int]:
        out = []
        for i in indexes:
            value = dec.symbol(self.tables[i])
            max_value = self.max_values[i]
            if value == max_value:
                n = dec.bits(_ESCAPE_LEN_BITS)
                if n > 32:
                    raise CorruptStreamError("corrupt HCI stream: impossible escape length")
                raw = dec.bits(n)
                value = -(raw + 1) // 2 if raw & 1 else raw // 2 + max_value
            out.append(value + self.offsets[i])
        return out


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------

def _analysis(cin, n, m, depth):
    layers = [conv(cin, n)]
    for _ in range(depth - 2):
        layers += [GDN(n), conv(n, n)]
    layers += [GDN(n), conv(n, m)]
    return nn.Sequential(*layers)


def _synthesis(m, n, cout, depth):
    layers = [deconv(m, n)]
    for _ in range(depth - 2):
        layers += [GDN(n, inverse=True), deconv(n, n)]
    layers += [GDN(n, inverse=True), deconv(n, cout)]
    return nn.Sequential(*layers)


def _ste_round(y, medians):
    """Rounded latent with a straight-through gradient (decoder input during training)."""
    q = torch.round(y - medians) + medians
    return y + (q - y).detach()


class _HCIBase(CompressionModel):
    arch = ""

    def __init__(self, N: int = 48, M: int = 16, depth: int = 4):
        super().__init__()
        if depth < 2:
            raise ValueError(f"depth={depth} must be ≥ 2")
        self.N, self.M, self.depth = int(N), int(M), int(depth)
        self.g_a = _analysis(3, self.N, self.M, self.depth)
        self.g_s = _synthesis(self.M, self.N, 3, self.depth)
        self._coders = None

    @property
    def downsampling(self) -> int:
        return 2 ** self.depth

    def config(self) -> dict:
        return {"arch": self.arch, "N": self.N, "M": self.M, "depth": self.depth}

    def synthesize(self, y_hat):
        """ŷ (B, M, h, w) → x̂ (B, 3, 2**depth·h, 2**depth·w), unclamped."""
        return self.g_s(y_hat)

    def _coder(self):
        """rANS tables: {"y": bottleneck} for a factorized model, {"z": bottleneck,
        "y": Gaussian conditional} for a hyperprior one (built once)."""
        if self._coders is None:
            if hasattr(self, "gaussian_conditional"):
                self._coders = {"z": _LatentCoder(self.entropy_bottleneck),
                                "y": _LatentCoder(self.gaussian_conditional)}
            else:
                self._coders = {"y": _LatentCoder(self.entropy_bottleneck)}
        return self._coders

    def _push_z(self, enc, z):
        """Push side information z (1, Nz, h, w) through the bottleneck; returns ẑ."""
        eb = self.entropy_bottleneck
        zmed = eb._get_medians().reshape(1, -1, 1, 1)
        z_sym = eb.quantize(z, "symbols", zmed)
        self._coder()["z"].push(enc, z_sym.reshape(-1).tolist(),
                                eb._build_indexes(z.size()).reshape(-1).tolist())
        return eb.dequantize(z_sym, zmed)

    def _pop_z(self, dec, latent_shape):
        """ẑ (1, Nz, ceil(h / 2), ceil(w / 2)) for a latent of ``latent_shape`` (h, w)."""
        eb = self.entropy_bottleneck
        zshape = (1, self.Nz, (latent_shape[0] + 1) // 2, (latent_shape[1] + 1) // 2)
        z_vals = self._coder()["z"].pop(dec, eb._build_indexes(zshape).reshape(-1).tolist())
        return eb.dequantize(torch.tensor(z_vals, dtype=torch.float32).reshape(zshape),
                             eb._get_medians().reshape(1, -1, 1, 1))

    def update(self, scale_table=None, force=False, update_quantiles: bool = False):
        self._coders = None
        return super().update(scale_table=scale_table, force=force,
                              update_quantiles=update_quantiles)

    def load_state_dict(self, state_dict, strict=True):
        self._coders = None
        return super().load_state_dict(state_dict, strict=strict)

    def _check_input(self, x):
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"x must be (B, 3, H, W); got shape {tuple(x.shape)}")
        if x.shape[-2] % self.downsampling or x.shape[-1] % self.downsampling:
            raise ValueError(f"H and W must be multiples of {self.downsampling}; got "
                             f"{tuple(x.shape[-2:])} (HCICodec pads or resizes for you)")

    # One rANS string per image; subclasses push/pop their latents into a shared state.
    def compress(self, x):
        self._check_input(x)
        latents = self._analyse(x)
        strings = []
        for b in range(x.shape[0]):
            enc = RansEncoder()
            self._push(enc, {k: v[b:b + 1] for k, v in latents.items()})
            strings.append(enc.to_bytes())
        return {"strings": [strings], "shape": tuple(latents["y"].shape[-2:])}

    def decompress(self, strings, shape):
        if not isinstance(strings, (list, tuple)) or len(strings) != 1:
            raise ValueError("strings must be [list of bytes per image] as compress() returns")
        ys = []
        for s in strings[0]:
            dec = RansDecoder(s)
            y_hat = self._pop(dec, tuple(shape))
            dec.finish()
            ys.append(y_hat)
        x_hat = self.synthesize(torch.cat(ys)).clamp_(0, 1)
        return {"x_hat": x_hat}


class HCIFactorized(_HCIBase):
    """Factorized-prior HCI model (Ballé et al. 2017 style, CompressAI ``FactorizedPrior``).

    Input: x float32 (B, 3, H, W) in [0, 1], H and W multiples of ``2**depth``.
    Latent y: (B, M, H / 2**depth, W / 2**depth), one learned density per channel.
    """

    arch = "factorized"

    def __init__(self, N: int = 48, M: int = 16, depth: int = 4):
        super().__init__(N, M, depth)
        self.entropy_bottleneck = EntropyBottleneck(self.M)

    def forward(self, x):
        y = self.g_a(x)
        y_noisy, y_likelihoods = self.entropy_bottleneck(y)
        if self.training:
            y_hat = _ste_round(y, self.entropy_bottleneck._get_medians().reshape(1, -1, 1, 1))
        else:
            y_hat = y_noisy
        x_hat = self.g_s(y_hat)
        return {"x_hat": x_hat, "likelihoods": {"y": y_likelihoods}}

    def _analyse(self, x):
        return {"y": self.g_a(x)}

    def _push(self, enc, latents):
        coder = self._coder()["y"]
        eb = self.entropy_bottleneck
        y = latents["y"]
        symbols = eb.quantize(y, "symbols", eb._get_medians().reshape(1, -1, 1, 1))
        indexes = eb._build_indexes(y.size())
        coder.push(enc, symbols.reshape(-1).tolist(), indexes.reshape(-1).tolist())

    def _y_hat(self, latents):
        eb = self.entropy_bottleneck
        med = eb._get_medians().reshape(1, -1, 1, 1)
        return eb.dequantize(eb.quantize(latents["y"], "symbols", med), med)

    def _pop(self, dec, shape):
        coder = self._coder()["y"]
        eb = self.entropy_bottleneck
        size = (1, self.M, *shape)
        indexes = eb._build_indexes(size)
        values = coder.pop(dec, indexes.reshape(-1).tolist())
        sym = torch.tensor(values, dtype=torch.float32).reshape(size)
        return eb.dequantize(sym, eb._get_medians().reshape(1, -1, 1, 1))


class HCIHyperprior(_HCIBase):
    """Scale-hyperprior HCI model (Ballé et al. 2018, CompressAI ``ScaleHyperprior`` style).

    Side information z: (B, Nz, ceil(h / 2), ceil(w / 2)) for a latent y of (B, M, h, w).
    """

    arch = "hyperprior"

    def __init__(self, N: int = 48, M: int = 16, depth: int = 4, Nz: int = 8):
        super().__init__(N, M, depth)
        self.Nz = int(Nz)
        self.h_a = nn.Sequential(conv(self.M, self.N, 3, 1), nn.ReLU(inplace=True),
                                 conv(self.N, self.Nz, 3, 2))
        self.h_s = nn.Sequential(deconv(self.Nz, self.N, 3, 2), nn.ReLU(inplace=True),
                                 conv(self.N, self.M, 3, 1), nn.ReLU(inplace=True))
        self.entropy_bottleneck = EntropyBottleneck(self.Nz)
        self.gaussian_conditional = GaussianConditional(None)

    def config(self) -> dict:
        return {**super().config(), "Nz": self.Nz}

    def _scales(self, z_hat, shape):
        return self.h_s(z_hat)[..., :shape[-2], :shape[-1]]

    def forward(self, x):
        y = self.g_a(x)
        z = self.h_a(torch.abs(y))
        z_hat, z_likelihoods = self.entropy_bottleneck(z)
        scales = self._scales(z_hat, y.shape)
        y_noisy, y_likelihoods = self.gaussian_conditional(y, scales)
        y_hat = _ste_round(y, 0.0) if self.training else y_noisy
        x_hat = self.g_s(y_hat)
        return {"x_hat": x_hat, "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}

    def _analyse(self, x):
        y = self.g_a(x)
        return {"y": y, "z": self.h_a(torch.abs(y))}

    def _push(self, enc, latents):
        z_hat = self._push_z(enc, latents["z"])
        y = latents["y"]
        scales = self._scales(z_hat, y.shape)
        idx = self.gaussian_conditional.build_indexes(scales)
        y_sym = self.gaussian_conditional.quantize(y, "symbols")
        self._coder()["y"].push(enc, y_sym.reshape(-1).tolist(), idx.reshape(-1).tolist())

    def _y_hat(self, latents):
        return self.gaussian_conditional.quantize(latents["y"], "symbols").float()

    def _pop(self, dec, shape):
        z_hat = self._pop_z(dec, shape)
        scales = self._scales(z_hat, (1, self.M, *shape))
        idx = self.gaussian_conditional.build_indexes(scales)
        y_vals = self._coder()["y"].pop(dec, idx.reshape(-1).tolist())
        return torch.tensor(y_vals, dtype=torch.float32).reshape(1, self.M, *shape)


ARCHS = {"factorized": HCIFactorized, "hyperprior": HCIHyperprior}


def build_model(config: dict) -> _HCIBase:
    """Model from a config dict (``arch`` plus the class's keyword arguments)."""
    cfg = dict(config)
    arch = cfg.pop("arch", "factorized")
    if arch == "gained-meanscale":  # its own file; imported here to avoid an import cycle
        from codec.streams.hci_gained import HCIGainedMeanScale
        return HCIGainedMeanScale(**cfg)
    if arch not in ARCHS:
        raise ValueError(f"arch={arch!r} is not one of {sorted(ARCHS) + ['gained-meanscale']}")
    return ARCHS[arch](**cfg)


def _resize(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    if tuple(x.shape[-2:]) == (h, w):
        return x
    down = h < x.shape[-2] or w < x.shape[-1]
    return F.interpolate(x, size=(h, w), mode="bilinear" if down else "bicubic",
                         align_corners=False, antialias=down).clamp_(0, 1)


@contextlib.contextmanager
def _deterministic():
    """Deterministic kernels, no autograd and full precision whatever the caller set up: the
    encoder and the decoder must compute bit-identical entropy-model scales (under an
    enclosing bfloat16 autocast they would not, and the rANS stream would fail to decode)."""
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        with torch.inference_mode(), torch.autocast("cpu", enabled=False), \
                torch.autocast("cuda", enabled=False):
            yield
    finally:
        torch.use_deterministic_algorithms(was)


# --------------------------------------------------------------------------------------------
# Codec
# --------------------------------------------------------------------------------------------

class HCICodec:
    """Image ↔ HCI bytes.

    Parameters
    ----------
    model : HCIFactorized | HCIHyperprior
        With CDFs (``model.update()`` run, or weights loaded that include them).
    working_size : int
        Side of the square resolution the model codes at when ``fit="resize"`` (64 for
        ``scenes-64``).
    fit : "resize" | "pad"
        How any H×W is brought to the model (see the module docstring).
    check_bits : int
        0–16 bits of hash of the decoded values appended to each stream (corruption detection).
    rate : float or None
        Rate point of a variable-rate model (``HCIGainedMeanScale``), in
        ``[0, model.n_rates - 1]``; None for a single-rate model.

    Stream layout (one rANS state, decode order): size flag (1 bit) [+ H-1, W-1 (16 bits
    each)], hyperprior z symbols (if any), latent y symbols, check bits.
    """

    def __init__(self, model: _HCIBase, working_size: int = 64, fit: str = "resize",
                 check_bits: int = 0, metadata: dict | None = None, rate: float | None = None):
        if fit not in ("resize", "pad"):
            raise ValueError(f"fit={fit!r} must be 'resize' or 'pad'")
        if fit == "resize" and (working_size < model.downsampling
                                or working_size % model.downsampling):
            raise ValueError(f"working_size={working_size} must be a positive multiple of "
                             f"{model.downsampling}")
        if not 0 <= int(check_bits) <= 16:
            raise ValueError(f"check_bits={check_bits} must be in 0..16")
        if (rate is None) != (not hasattr(model, "n_rates")):
            raise ValueError(f"rate={rate!r}: a variable-rate model needs a rate in "
                             "[0, n_rates - 1] and a single-rate model takes none")
        if rate is not None:
            model._gains(rate)  # validates the range
            model.rate = float(rate)
        self.rate = None if rate is None else float(rate)
        self.model = model.eval()
        self.working_size = int(working_size)
        self.fit = fit
        self.check_bits = int(check_bits)
        self.metadata = dict(metadata or {})

    # ---- configuration -----------------------------------------------------------------
    def config(self) -> dict:
        return {"model": self.model.config(), "working_size": self.working_size,
                "fit": self.fit, "check_bits": self.check_bits,
                **({"rate": self.rate} if self.rate is not None else {}),
                "entropy_coder": f"spread-rANS-{PRECISION}bit", **self.metadata}

    def save_pretrained(self, folder: str | Path) -> None:
        """Write ``config.json`` and ``model.safetensors`` (with the entropy-model CDFs)."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.model._coder()  # raises "Run update() first" before anything is written
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        save_file(state, str(folder / WEIGHTS_NAME))
        (folder / CONFIG_NAME).write_text(json.dumps(self.config(), indent=2) + "\n")

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> "HCICodec":
        """Load ``config.json`` and its weights: ``model.safetensors`` beside it, or the file
        its ``"weights"`` key names relative to the folder (rate points of one variable-rate
        model share one weights file)."""
        from safetensors.torch import load_file

        folder = Path(folder)
        if not (folder / CONFIG_NAME).is_file():
            raise FileNotFoundError(f"{folder} needs {CONFIG_NAME} and {WEIGHTS_NAME}; train one "
                                    "with `python -m training.hci --out FOLDER`")
        cfg = json.loads((folder / CONFIG_NAME).read_text())
        weights = folder / cfg.pop("weights", WEIGHTS_NAME)
        if not weights.is_file():
            raise FileNotFoundError(f"{folder} needs {CONFIG_NAME} and {weights.name} "
                                    f"({weights} is missing); train one with "
                                    "`python -m training.hci --out FOLDER`")
        model = build_model(cfg.pop("model"))
        model.load_state_dict(load_file(str(weights)))
        cfg.pop("entropy_coder", None)
        known = {k: cfg.pop(k) for k in ("working_size", "fit", "check_bits", "rate")
                 if k in cfg}
        return cls(model, **known, metadata=cfg)

    # ---- coding --------------------------------------------------------------------------
    def _model_size(self, h: int, w: int) -> tuple[int, int]:
        if self.fit == "resize":
            return self.working_size, self.working_size
        d = self.model.downsampling
        return -(-h // d) * d, -(-w // d) * d

    def _to_model_input(self, rgb: np.ndarray) -> torch.Tensor:
        h, w = rgb.shape[:2]
        x = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None].float() / 255.0
        mh, mw = self._model_size(h, w)
        if self.fit == "resize":
            return _resize(x, mh, mw)
        return F.pad(x, (0, mw - w, 0, mh - h), mode="replicate")

    def _check_value(self, values: list[int]) -> int:
        data = np.asarray(values, dtype=np.int64).tobytes()
        return zlib.crc32(data) & ((1 << self.check_bits) - 1)

    def encode(self, image) -> bytes:
        """Any image (see ``to_rgb_uint8``) → HCI bytes (self-contained: holds the size)."""
        rgb = to_rgb_uint8(image)
        h, w = rgb.shape[:2]
        with _deterministic():
            x = self._to_model_input(rgb)
            latents = self.model._analyse(x)
        enc = RansEncoder()
        default = self.fit == "resize" and (h, w) == (self.working_size, self.working_size)
        enc.symbol(_BIT_TABLE, 0 if default else 1)
        if not default:
            enc.bits(h - 1, _SIZE_BITS)
            enc.bits(w - 1, _SIZE_BITS)
        with _deterministic():
            self.model._push(enc, latents)
        if self.check_bits:
            values = [op[1] for op in enc._ops]  # header values, then latent values
            enc.bits(self._check_value(values), self.check_bits)
        return enc.to_bytes()

    def decode(self, data: bytes, at_working_size: bool = False) -> np.ndarray:
        """HCI bytes → uint8 (H, W, 3) at the original size (``at_working_size=True``: at the
        model's working size, as a decoder at that resolution wants it, with no resize).
        Malformed bytes raise ValueError."""
        dec = RansDecoder(data)
        if dec.symbol(_BIT_TABLE) == 0:
            if self.fit != "resize":
                raise CorruptStreamError("corrupt HCI stream: size flag invalid for fit='pad'")
            h = w = self.working_size
            header = [0]
        else:
            h, w = dec.bits(_SIZE_BITS) + 1, dec.bits(_SIZE_BITS) + 1
            if h < 2 or w < 2:
                raise CorruptStreamError(f"corrupt HCI stream: image size {h}×{w}")
            header = [1, h - 1, w - 1]
        mh, mw = self._model_size(h, w)
        d = self.model.downsampling
        if (mh // d) * (mw // d) * self.model.M > 8 * _MAX_STREAM_BYTES:
            raise CorruptStreamError(f"corrupt HCI stream: implausible image size {h}×{w}")
        log = _RecordingDecoder(dec) if self.check_bits else dec
        with _deterministic():
            y_hat = self.model._pop(log, (mh // d, mw // d))
        if self.check_bits:
            got = dec.bits(self.check_bits)
            if got != self._check_value(header + log.values):
                raise CorruptStreamError("corrupt HCI stream: check value mismatch")
        dec.finish()
        with _deterministic():
            x_hat = self.model.synthesize(y_hat).clamp_(0, 1)
            if self.fit == "resize":
                if not at_working_size:
                    x_hat = _resize(x_hat, h, w)
            else:
                x_hat = x_hat[..., :h, :w]
            out = (x_hat[0].permute(1, 2, 0) * 255.0).round().to(torch.uint8).numpy()
        return np.ascontiguousarray(out)

    @torch.no_grad()
    def reconstruct_batch(self, x: torch.Tensor) -> torch.Tensor:
        """What ``decode(encode(image))`` returns, for a batch at the working size and without
        entropy coding (the latents are rounded exactly as the bitstream carries them): float
        (B, 3, H, W) in [0, 1] → float (B, 3, H, W) in [0, 1] on the uint8 grid. Used to
        train the decoder on the HCIs it will receive."""
        self.model._check_input(x)
        x_hat = self.model.synthesize(self.model._y_hat(self.model._analyse(x))).clamp(0, 1)
        return (x_hat * 255.0).round() / 255.0

    def roundtrip(self, image) -> tuple[bytes, np.ndarray]:
        data = self.encode(image)
        return data, self.decode(data)


class _RecordingDecoder:
    """Decoder proxy that records every decoded value (for the check hash)."""

    def __init__(self, dec: RansDecoder):
        self._dec = dec
        self.values: list[int] = []

    def symbol(self, table):
        v = self._dec.symbol(table)
        self.values.append(v)
        return v

    def bits(self, nbits):
        v = self._dec.bits(nbits)
        self.values.append(v)
        return v
