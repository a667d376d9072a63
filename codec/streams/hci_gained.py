"""Variable-rate mean-scale hyperprior HCI model for photographs at their own size.

One network serves every rate point: learned per-channel *gain units* (Cui et al., "Asymmetric
Gained Deep Image Compression with Continuous Rate Adaptation", CVPR 2021) scale the latent
before quantization and undo the scale before synthesis. ``rate`` is a float in
``[0, n_rates - 1]``: an integer picks a trained gain vector, a fraction interpolates two of
them geometrically, so the rate can be tuned after training. The hyperprior is Minnen et al.
2018's mean-scale model without the serial autoregressive context (too slow on a CPU).

Shapes, for an input x float32 (B, 3, H, W) in [0, 1] with H, W multiples of ``2**depth``:

- y: (B, M, H / 2**depth, W / 2**depth), gained: ``y · gain(rate)``
- z: (B, Nz, ceil(h / 2), ceil(w / 2)) for a latent of h × w
- means, scales: (B, M, h, w) from ``h_s(z_hat)``

The hyper transforms are applied to whatever rows they are given, so the sliced stream
(``hci_sliced``) runs them on each band of latent rows alone and the decoder reproduces the
encoder's scales exactly from that band's bytes.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models.utils import conv, deconv

from codec.streams.hci import _HCIBase

_SCALE_MIN = 0.11  # CompressAI's lower bound on Gaussian scales


class HCIGainedMeanScale(_HCIBase):
    """Mean-scale hyperprior with gain units (one model, ``n_rates`` trained rate points).

    Parameters
    ----------
    N, M, depth : int
        Channels of the transforms, latent channels, stride-2 stages of the analysis.
    Nz : int
        Channels of the side information z.
    n_rates : int
        Trained gain vectors (rate points 0 … n_rates - 1, higher = more bits).
    """

    arch = "gained-meanscale"

    def __init__(self, N: int = 96, M: int = 96, depth: int = 5, Nz: int = 32,
                 n_rates: int = 4):
        super().__init__(N, M, depth)
        if n_rates < 1:
            raise ValueError(f"n_rates={n_rates} must be ≥ 1")
        self.Nz, self.n_rates = int(Nz), int(n_rates)
        self.h_a = nn.Sequential(conv(self.M, self.N, 3, 1), nn.LeakyReLU(inplace=True),
                                 conv(self.N, self.N, 3, 1), nn.LeakyReLU(inplace=True),
                                 conv(self.N, self.Nz, 3, 2))
        self.h_s = nn.Sequential(deconv(self.Nz, self.N, 3, 2), nn.LeakyReLU(inplace=True),
                                 conv(self.N, self.N, 3, 1), nn.LeakyReLU(inplace=True),
                                 conv(self.N, 2 * self.M, 3, 1))
        # log-gains: rate r encodes y·exp(log_gain[r]) and decodes ŷ·exp(log_igain[r])
        # spread from the start (e^-1 … e^1) so the rate points part before training does
        spread = torch.linspace(-1.0, 1.0, self.n_rates) if self.n_rates > 1 else torch.zeros(1)
        self.log_gain = nn.Parameter(spread[:, None].repeat(1, self.M))
        self.log_igain = nn.Parameter(-spread[:, None].repeat(1, self.M))
        self.entropy_bottleneck = EntropyBottleneck(self.Nz)
        self.gaussian_conditional = GaussianConditional(None)
        self.rate = float(self.n_rates - 1)

    def config(self) -> dict:
        return {**super().config(), "Nz": self.Nz, "n_rates": self.n_rates}

    # ---- rate ----------------------------------------------------------------------------
    def _gains(self, rate) -> tuple[torch.Tensor, torch.Tensor]:
        """gain, inverse gain for ``rate``: a float, or a float tensor (B,) → (B, M, 1, 1)."""
        r = torch.as_tensor(rate, dtype=torch.float32).reshape(-1)
        if ((r < 0) | (r > self.n_rates - 1)).any() or not torch.isfinite(r).all():
            raise ValueError(f"rate={rate} must be in [0, {self.n_rates - 1}]")
        lo = r.floor().long().clamp(max=self.n_rates - 1)
        hi = (lo + 1).clamp(max=self.n_rates - 1)
        t = (r - lo.float())[:, None]
        g = (1 - t) * self.log_gain[lo] + t * self.log_gain[hi]
        ig = (1 - t) * self.log_igain[lo] + t * self.log_igain[hi]
        return g.exp()[..., None, None], ig.exp()[..., None, None]

    def _hyper(self, z_hat, shape):
        """(means, scales) (B, M, h, w) from z_hat, cropped to the latent ``shape``."""
        p = self.h_s(z_hat)[..., :shape[-2], :shape[-1]]
        means, scales = p.chunk(2, dim=1)
        return means, scales

    # ---- training ------------------------------------------------------------------------
    def forward(self, x, rate=None):
        """Training/evaluation pass. ``rate``: float or (B,) tensor (default ``self.rate``)."""
        gain, igain = self._gains(self.rate if rate is None else rate)
        y = self.g_a(x) * gain
        z = self.h_a(y)
        z_hat, z_likelihoods = self.entropy_bottleneck(z)
        means, scales = self._hyper(z_hat, y.shape)
        y_noisy, y_likelihoods = self.gaussian_conditional(y, scales, means=means)
        if self.training:  # straight-through rounding around the predicted mean
            q = torch.round(y - means) + means
            y_hat = y + (q - y).detach()
        else:
            y_hat = y_noisy
        x_hat = self.g_s(y_hat * igain)
        return {"x_hat": x_hat, "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}

    # ---- coding (one rANS state; see hci.py) ---------------------------------------------
    def _analyse(self, x):
        gain, _ = self._gains(self.rate)
        y = self.g_a(x) * gain
        return {"y": y}

    def push_band(self, enc, y):
        """Push z, then y, of one band of gained latent rows y (1, M, h, w) into ``enc``;
        returns ŷ (1, M, h, w) as the decoder will rebuild it."""
        means, scales = self._hyper(self._push_z(enc, self.h_a(y)), y.shape)
        gc = self.gaussian_conditional
        y_sym = gc.quantize(y, "symbols", means)
        self._coder()["y"].push(enc, y_sym.reshape(-1).tolist(),
                                gc.build_indexes(scales).reshape(-1).tolist())
        return gc.dequantize(y_sym, means)

    def pop_band(self, dec, shape):
        """Inverse of ``push_band`` for a band of latent ``shape`` (h, w): ŷ (1, M, h, w)."""
        means, scales = self._hyper(self._pop_z(dec, shape), (1, self.M, *shape))
        gc = self.gaussian_conditional
        y_vals = self._coder()["y"].pop(dec, gc.build_indexes(scales).reshape(-1).tolist())
        sym = torch.tensor(y_vals, dtype=torch.float32).reshape(1, self.M, *shape)
        return gc.dequantize(sym, means)

    def _push(self, enc, latents):
        self.push_band(enc, latents["y"])

    def _pop(self, dec, shape):
        return self.pop_band(dec, shape)

    def synthesize(self, y_hat):
        """ŷ (B, M, h, w) in the gained domain → x̂ (B, 3, 2**depth·h, 2**depth·w), unclamped."""
        _, igain = self._gains(self.rate)
        return self.g_s(y_hat * igain)

    def _y_hat(self, latents):
        y = latents["y"]
        eb = self.entropy_bottleneck
        z = self.h_a(y)
        zmed = eb._get_medians().reshape(1, -1, 1, 1)
        z_hat = eb.dequantize(eb.quantize(z, "symbols", zmed), zmed)
        means, _ = self._hyper(z_hat, y.shape)
        gc = self.gaussian_conditional
        return gc.dequantize(gc.quantize(y, "symbols", means), means)
