"""Deterministic regression decoder: a diagnostic baseline beside DPCD (``sdgic train regression``).

Same inputs as DPCD — caption token embeddings and RSRT embeddings through cross-attention,
the decoded HCI as the network's input — but one forward pass trained with MSE instead of a
denoising loop. It shows what the streams (and the tokens in particular) can carry
independently of sampling, and it trains in minutes on a CPU where DPCD takes hours.

The network is a diffusers ``UNet2DConditionModel`` used at timestep 0: input the HCI in
model space (zeros and a flag channel of 0 when the HCI is lost), output the image in model
space. Its own RSRT encoder and embedding are trained through the MSE loss with the same
token dropout as DPCD (random subsets and prefixes), so the measured gain from tokens is the
gain tokens can give when optimised for reconstruction.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from torch import nn

from codec.dpcd.configs import PATCH
from codec.dpcd.decoder import from_model_space, to_model_space
from codec.dpcd.rsrt import RSRTEmbedding, RSRTEncoder, code_health, range_penalty
from codec.provenance import git_commit, write_model_card
from codec.text_encoder import TextEncoder
from training.dpcd import HCI_POINTS, TRAIN_SEED, conditioned_batch, load_hci_codecs, token_dropout
from training.harness import TrainLoop
from training.stages import RegressionConfig

PARTS = ("net", "rsrt_encoder", "rsrt_embedding")


def regression_unet(size: int = 64, text_dim: int = 384, tiny: bool = False) -> UNet2DConditionModel:
    """The regression network: HCI (+ presence flag) in model space → image in model space."""
    c = 3 * PATCH ** 2
    # attention only at the lowest resolution (8×8), as in DPCD: it dominates CPU time above
    widths = (16, 32) if tiny else (32, 64, 128)
    down = ("DownBlock2D",) * (len(widths) - 1) + ("CrossAttnDownBlock2D",)
    up = ("CrossAttnUpBlock2D",) + ("UpBlock2D",) * (len(widths) - 1)
    return UNet2DConditionModel(sample_size=size // PATCH, in_channels=c + 1, out_channels=c,
                                down_block_types=down, up_block_types=up,
                                block_out_channels=widths, layers_per_block=1,
                                attention_head_dim=8 if not tiny else 2,
                                norm_num_groups=8, cross_attention_dim=text_dim)


class RegressionDecoder(nn.Module):
    """``net`` + ``rsrt_encoder`` + ``rsrt_embedding``; ``forward`` → images (B, 3, H, W) in [0, 1].

    Input: ``hci`` float (B, 3, H, W) in [0, 1], ``hci_present`` bool (B,); caption tokens
    ``cond`` (B, L, D) with ``mask`` (B, L); RSRT embeddings (B, K, D) or None.
    """

    def __init__(self, net: UNet2DConditionModel, rsrt_encoder: RSRTEncoder,
                 rsrt_embedding: RSRTEmbedding):
        super().__init__()
        self.net, self.rsrt_encoder, self.rsrt_embedding = net, rsrt_encoder, rsrt_embedding

    def model_out(self, hci, hci_present, cond, mask, tokens=None):
        keep = hci_present.float().view(-1, 1, 1, 1)
        z = to_model_space(hci) * keep
        flag = keep.expand(-1, 1, *z.shape[-2:])
        if tokens is not None:
            cond = torch.cat([cond, tokens], 1)
            mask = torch.cat([mask, torch.ones(tokens.shape[:2], dtype=torch.bool)], 1)
        return self.net(torch.cat([z, flag], 1), 0, encoder_hidden_states=cond,
                        encoder_attention_mask=mask).sample

    def forward(self, hci, hci_present, cond, mask, tokens=None) -> torch.Tensor:
        return from_model_space(self.model_out(hci, hci_present, cond, mask, tokens))

    def save(self, folder: str | Path) -> None:
        for name in PARTS:
            getattr(self, name).save_pretrained(Path(folder) / name)

    @classmethod
    def load(cls, folder: str | Path) -> "RegressionDecoder":
        folder = Path(folder)
        if not (folder / "net" / "config.json").is_file():
            raise FileNotFoundError(f"no regression decoder in {folder} (expected net/, "
                                    "rsrt_encoder/, rsrt_embedding/); train one with "
                                    "`sdgic train regression --out DIR`")
        return cls(UNet2DConditionModel.from_pretrained(folder / "net"),
                   RSRTEncoder.from_pretrained(folder / "rsrt_encoder"),
                   RSRTEmbedding.from_pretrained(folder / "rsrt_embedding")).eval()


def train_regression(out: str | Path, **options) -> dict:
    """Train a RegressionDecoder into ``out`` with the
    :class:`~training.stages.RegressionConfig` fields given as keywords; returns its card."""
    return run_regression(RegressionConfig(out=str(out), **options))


def run_regression(cfg: RegressionConfig) -> dict:
    """Train a RegressionDecoder on endless scenes; save it to ``cfg.out`` with a model card.

    ``captioner``: a SceneCaptioner folder whose captions replace the ground truth (as in
    ``train_dpcd``)."""
    steps, batch_size, size, num_tokens = cfg.steps, cfg.batch_size, cfg.size, cfg.num_tokens
    levels, tiny = cfg.levels, cfg.tiny
    caption_dropout, hci_dropout, captioner = cfg.caption_dropout, cfg.hci_dropout, cfg.captioner
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    text = TextEncoder()
    codecs = load_hci_codecs(cfg.hci_root)
    if captioner is not None:
        from benchmark.captioner import SceneCaptioner

        captioner = SceneCaptioner(captioner)
    model = RegressionDecoder(regression_unet(size, text.dim, tiny),
                              RSRTEncoder(num_tokens=num_tokens, levels=tuple(levels),
                                          text_dim=text.dim, width=16 if tiny else 64),
                              RSRTEmbedding(num_tokens=num_tokens, levels=tuple(levels),
                                            dim=text.dim))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps,
                                                pct_start=0.05)
    fsq = model.rsrt_encoder.fsq
    (out / "train.log").unlink(missing_ok=True)
    loop = TrainLoop("train regression", 0, steps, out / "train.log", log_every=50,
                     log_line=lambda done, window, sps: (
                         f"step {done} mse {np.mean([float(r['loss']) for r in window]):.5f} "
                         + _token_health(window, fsq) + f" {sps:.2f}s/step"))
    t0 = time.time()

    def step_fn(step: int) -> dict:
        b = conditioned_batch(step, batch_size, size, text, codecs, g, captioner,
                              caption_dropout, hci_dropout)
        x, hci, present, cond, mask = b["x"], b["hci"], b["hci_present"], b["cond"], b["mask"]
        z = model.rsrt_encoder(x, hci, b["pooled"])
        q, codes = ((fsq.normalize(fsq.bound(z)), fsq(z)[1]) if step < cfg.unquantized_steps
                    else fsq(z))
        tokens = model.rsrt_embedding(q=q, present=token_dropout(batch_size, num_tokens, g))
        pred = model.model_out(hci, present, cond, mask, tokens)
        loss = F.mse_loss(pred, to_model_space(x)) + 1e-2 * range_penalty(z)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        recent[:] = (recent + [codes.detach()])[-10:]
        return {"loss": loss.detach(), "codes": codes.detach(), "spread": z.detach().std()}

    recent: list[torch.Tensor] = []   # the last 10 steps' codes
    loop.run(step_fn)
    losses = loop.losses
    model.eval()
    model.save(out)
    h = code_health(torch.cat(recent), fsq.codebook_size)
    card = {
        "model": "RegressionDecoder (training/regression.py): diagnostic baseline, not a preset",
        "training_command": cfg.command_line("sdgic train regression"),
        "commit": git_commit(),
        "data": f"endless procedural scenes, data set seed {TRAIN_SEED}, {size} px; HCIs at "
                f"rate points {list(HCI_POINTS)}; caption dropout {caption_dropout}, HCI "
                f"dropout {hci_dropout}, token dropout (subsets and prefixes); captions from "
                f"{'the scene captioner' if captioner is not None else 'ground truth'}",
        "steps": steps, "batch_size": batch_size, "lr": cfg.lr, "status": "complete",
        "config": cfg.record(),
        "parameters": {n: sum(p.numel() for p in getattr(model, n).parameters()) for n in PARTS},
        "tokens": {"num_tokens": num_tokens, "levels": list(levels), "bits_each": fsq.bits},
        "train_seconds": round(time.time() - t0, 1),
        "mse_last_100_steps": round(float(np.mean(losses[-100:])), 5),
        "code_health_last_160_images": {"distinct_mean": float(np.mean(h["distinct"])),
                                        "entropy_bits_mean": float(np.mean(h["entropy_bits"]))},
    }
    write_model_card(out, card)
    return card


def _token_health(window: list[dict], fsq) -> str:
    """Log-line part: distinct codes and entropy over the window's last 10 steps, and the
    spread of the encoder's output before quantisation."""
    h = code_health(torch.cat([r["codes"] for r in window[-10:]]), fsq.codebook_size)
    return (f"tokens distinct {np.mean(h['distinct']):.1f} entropy "
            f"{np.mean(h['entropy_bits']):.2f}b pre-q std "
            f"{np.mean([float(r['spread']) for r in window]):.2f}")
