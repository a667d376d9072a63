"""DPCD stages 2 and 3: the HCI path (ControlNet) and the residual tokens (``sdgic train dpcd``).

``stage="control"``: a ``ControlNetModel`` made ``from_unet`` of the stage-1 prior reads the
decoded HCI; the UNet keeps training with it (``freeze_unet=False``, the default, because the
shipped prior is not converged and every step on it is worth taking) or stays frozen as in
SD + ControlNet (``freeze_unet=True``). Stream dropout: the caption is replaced by the null
caption with ``caption_dropout``, the HCI path is switched off per image with ``hci_dropout``,
so the decoder keeps working for every subset of streams.

``stage="rsrt"``: the RSRT encoder (source, decoded HCI, pooled caption) → K FSQ tokens →
``RSRTEmbedding`` → appended to the cross-attention sequence, trained jointly with the UNet and
ControlNet on the same denoising loss (the paper's reconstruction-aware objective). The first
``unquantized_steps`` run without rounding (FSQ's bounded continuous values), then FSQ with a
straight-through gradient. Token dropout: half the batch loses a random subset of tokens (a
lossy channel), the other half keeps a random prefix (fewer tokens sent: a lower rate point).
``code_health`` (distinct codes, entropy per token) goes to the log every 25 steps.

``photos``: train on natural photos (random crops of ``sdgic data photos`` train tiles) instead
of scenes. There is no offline caption source for photos, so every photo trains with no caption
(the receiver's "no caption stream"): the HCI and the tokens are its only guidance.

HCIs are what the receiver decodes: each image is coded at a random one of the shipped rate
points (``HCICodec.reconstruct_batch``, identical to the bitstream round trip).

Resumable: ``RUN/checkpoint/`` holds every module, their EMA (``ema/``), the optimizer and the
step. Without a checkpoint the run starts from the preset folder ``init`` (its ``unet/`` and,
when present, ``controlnet/`` and ``rsrt_*``), so it continues on a fresh machine.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np
import torch
from diffusers import ControlNetModel, UNet2DConditionModel
from diffusers.training_utils import EMAModel
from torch import nn

from benchmark import seeds
from benchmark.captioner import SceneCaptioner, attribute_targets, captioner_loss
from benchmark.scenes import generate
from codec.dpcd.configs import controlnet_kwargs, unet_config
from codec.dpcd.decoder import DPCDSampler, denoise, to_model_space, training_scheduler
from codec.dpcd.rsrt import RSRTEmbedding, RSRTEncoder, code_health, range_penalty
from codec.provenance import git_commit, write_model_card
from codec.streams.hci import HCICodec
from codec.text_encoder import TextEncoder
from training.dpcd_data import PhotoBatches, save_grid, scene_batch, scene_batches, v_loss
from training.harness import (TrainLoop, atomic_folder, load_ema_state, loss_line, save_ema_state,
                              warmup)
from training.stages import DPCDConfig, captions_source
from training.token_head import TokenAttributeHead

TRAIN_SEED = seeds.PRIOR_TRAIN    # the prior's training scenes (never used for evaluation)
SAMPLE_SEED = seeds.PRIOR_SAMPLES
HCI_POINTS = ("low", "mid", "high", "top")
MODULE_CLASSES = {"unet": UNet2DConditionModel, "controlnet": ControlNetModel,
                  "rsrt_encoder": RSRTEncoder, "rsrt_embedding": RSRTEmbedding,
                  "rsrt_attribute_head": TokenAttributeHead}
TRAINING_ONLY = ("rsrt_attribute_head",)   # checkpointed, never exported to a preset


def load_hci_codecs(root: str | Path, points=HCI_POINTS) -> list[HCICodec]:
    """The HCI rate points the decoder trains on (``root/<point>/``)."""
    root = Path(root)
    missing = [p for p in points if not (root / p / "config.json").is_file()]
    if missing:
        raise FileNotFoundError(f"HCI rate points {missing} not found under {root}; expected "
                                f"folders {list(points)} (e.g. codec/weights/hci-64)")
    return [HCICodec.from_pretrained(root / p) for p in points]


def random_hci(codecs: list[HCICodec], x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Each image of ``x`` (B, 3, H, W) through a random rate point: decoded HCIs (B, 3, H, W)."""
    which = torch.randint(0, len(codecs), (len(x),), generator=g).to(x.device)
    out = torch.empty_like(x)
    for i, codec in enumerate(codecs):
        sel = which == i
        if sel.any():
            out[sel] = codec.reconstruct_batch(x[sel])
    return out


def token_dropout(b: int, k: int, g: torch.Generator) -> torch.Tensor:
    """Which tokens arrive, bool (B, K): half the rows lose a random subset (each token kept with
    a per-row rate drawn from U(0, 1)), half keep a random prefix of 0..K tokens."""
    rate = torch.rand(b, 1, generator=g)
    subset = torch.rand(b, k, generator=g) < rate
    n = torch.randint(0, k + 1, (b, 1), generator=g)
    prefix = torch.arange(k)[None] < n
    use_subset = torch.rand(b, 1, generator=g) < 0.5
    return torch.where(use_subset, subset, prefix)


def conditioned_batch(step: int, batch_size: int, size: int, text: TextEncoder,
                      codecs: list[HCICodec], g: torch.Generator, captioner=None,
                      caption_dropout: float = 0.15, hci_dropout: float = 0.2,
                      scenes: tuple | None = None) -> dict:
    """One training batch with its streams as the receiver would get them.

    Returns ``x`` (B, 3, H, W) scenes of ``step`` (or the given ``scenes``: ``scene_batch``'s
    ``(x, captions)``, e.g. rendered ahead by data-loader workers, or ``PhotoBatches``'s, whose
    ``None`` captions count as dropped, or ``NativePairBatches``'s ``(x, captions, hci)``);
    ``hci`` their decoded HCIs at random rate points (or the given ones); ``hci_present`` bool (B,) (HCI dropout); caption token embeddings
    ``cond`` and ``mask`` after caption dropout (``drop`` bool (B,)); ``pooled`` (B, D)
    sentence embeddings (zeros where the caption was dropped), as the RSRT encoder reads them.
    Tensors live on ``text.device``; random draws come from the CPU generator ``g``, so a run
    sees the same draws on any device.
    """
    scenes = scenes if scenes is not None else scene_batch(step, batch_size, size, TRAIN_SEED)
    x, captions = scenes[:2]
    dev = torch.device(text.device)
    x = x.to(dev)
    if captioner is not None:
        captions = captioner(x)
    # a third element: the HCIs the data already holds (native scale: crops of the whole
    # photo's HCI); else each image goes through a random rate point here
    hci = scenes[2].to(dev) if len(scenes) > 2 else random_hci(codecs, x, g)
    drop = (torch.rand(batch_size, generator=g) < caption_dropout) \
        | torch.tensor([c is None for c in captions])
    captions = ["" if d else c for c, d in zip(captions, drop.tolist())]
    hci_present = (torch.rand(batch_size, generator=g) >= hci_dropout).to(dev)
    cond, mask = text.tokens(captions)
    pooled = TextEncoder.pool(cond, mask) * (~drop).float().to(dev)[:, None]
    return dict(x=x, hci=hci, hci_present=hci_present, cond=cond, mask=mask, drop=drop.to(dev),
                pooled=pooled)


def rsrt_scene(mods) -> bool:
    """Whether the run's token encoder has the captioner's feature stack."""
    return "rsrt_encoder" in mods and mods["rsrt_encoder"].config.backbone == "scene"


def _load(name: str, folder: Path):
    cls = MODULE_CLASSES[name]
    return cls.from_pretrained(folder, torch_dtype=torch.float32)


def build_modules(stage: str, init: str | Path | None, text_dim: int, config: str = "scenes-64",
                  num_tokens: int = 8, levels=(8, 5, 5, 5),
                  attribute_head_words: int | None = None, rsrt_backbone: str = "conv",
                  token_cells: int = 0, fresh_rsrt: bool = False,
                  scene_features: nn.Module | None = None) -> tuple[nn.ModuleDict, str]:
    """The stage's modules from a preset folder ``init`` (missing ones made fresh).

    Fresh RSRT modules (none in ``init``, or ``fresh_rsrt``) take ``num_tokens``, ``levels``,
    ``rsrt_backbone`` and ``token_cells``; a fresh ``"scene"`` encoder gets the weights of
    ``scene_features`` (a trained ``CaptionerNet.features``).

    ``attribute_head_words``: also build the training-only ``TokenAttributeHead`` for a
    captioner with that many background words (loaded from ``init`` whenever it holds one).
    """
    init = Path(init) if init is not None else None
    mods = nn.ModuleDict()
    if init is not None and (init / "unet" / "config.json").is_file():
        mods["unet"] = _load("unet", init / "unet")
        src = [f"unet from {init / 'unet'}"]
    elif init is not None:
        raise FileNotFoundError(f"--init {init} has no unet/config.json; point it at a preset "
                                "folder (e.g. codec/weights/scenes-64) or a stage-1 export")
    else:
        mods["unet"] = UNet2DConditionModel(**unet_config(config, cross_attention_dim=text_dim))
        src = ["fresh unet"]
    if init is not None and (init / "controlnet" / "config.json").is_file():
        mods["controlnet"] = _load("controlnet", init / "controlnet")
        src.append("controlnet from preset")
    else:
        mods["controlnet"] = ControlNetModel.from_unet(mods["unet"], **controlnet_kwargs())
        src.append("controlnet from_unet")
    if stage == "rsrt":
        encoder_kw = dict(text_dim=text_dim, backbone=rsrt_backbone, cells=token_cells)
        for name, kw in (("rsrt_encoder", encoder_kw), ("rsrt_embedding", dict(dim=text_dim))):
            if init is not None and (init / name / "config.json").is_file() and not fresh_rsrt:
                mods[name] = _load(name, init / name)
                src.append(f"{name} from preset")
            else:
                mods[name] = MODULE_CLASSES[name](num_tokens=num_tokens, levels=tuple(levels), **kw)
                src.append(f"fresh {name}")
                if name == "rsrt_encoder" and rsrt_backbone == "scene":
                    if scene_features is None:
                        raise ValueError("a fresh scene-backbone token encoder needs the "
                                         "captioner's features (scene_features)")
                    mods[name].load_scene_weights(scene_features)
                    src[-1] += " (scene backbone from the captioner)"
        head = "rsrt_attribute_head"
        if init is not None and (init / head / "config.json").is_file():
            mods[head] = _load(head, init / head)
            src.append(f"{head} from {init}")
        elif attribute_head_words is not None:
            mods[head] = TokenAttributeHead(num_tokens=num_tokens, token_dim=len(levels),
                                            text_dim=text_dim, num_words=attribute_head_words)
            src.append(f"fresh {head}")
    return mods, ", ".join(src)


def train_dpcd(run: str | Path, stage: str = "control", **options) -> Path:
    """Train (or resume) ``stage`` in ``run`` with the :class:`DPCDConfig` fields given as
    keywords; returns the checkpoint folder. See :func:`run_dpcd`."""
    return run_dpcd(DPCDConfig(run=str(run), stage=stage, **options))


def run_dpcd(cfg: DPCDConfig) -> Path:
    """Train (or resume) ``cfg.stage`` in ``cfg.run``; returns the checkpoint folder.

    ``captioner``: each training image's caption is what that captioner writes for it (as a
    sender would), so the decoder and the tokens learn to live with its mistakes.
    ``caption_detail`` ``"layout"``: captions state colour and position only, and the export
    sets ``"caption_detail": "layout"`` in its preset.json. ``export``: a preset folder
    refreshed at every checkpoint with the EMA modules (UNet and ControlNet as fp16
    safetensors) and an in-progress model card, ready to commit.

    ``token_attribute_loss``: a training-only ``TokenAttributeHead`` reads the tokens and the
    caption embedding and must recover what the captioner reads from the source, so the tokens
    get a direct gradient toward what the caption leaves out; each parameter group is then
    gradient-clipped on its own. A run started without it cannot resume with it.

    ``photos``: train on its train tiles with no captions; with ``native_pairs`` (a
    :mod:`training.native_pairs` folder made with ``hci_root``) on aligned crops of whole
    photos and of *their* HCI, for a ``"size": "native"`` preset.
    """
    cfg.check()
    stage, steps, batch_size, dev = cfg.stage, cfg.steps, cfg.batch_size, torch.device(cfg.device)
    data_name = cfg.data_name
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device={cfg.device!r} but torch sees no CUDA device")
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    run = Path(cfg.run)
    ckpt = run / "checkpoint"
    (run / "samples").mkdir(parents=True, exist_ok=True)
    text = TextEncoder(cfg.text_encoder, device=str(dev))
    codecs = load_hci_codecs(cfg.hci_root)
    for c in codecs:
        c.model.to(dev)
    captioner = None
    if cfg.captioner is not None:
        captioner = SceneCaptioner(cfg.captioner, detail=cfg.caption_detail)
        captioner.model.to(dev)
    head_words = captioner.model.config.num_words if cfg.token_attribute_loss else None
    scene_features = None
    if cfg.rsrt_backbone == "scene":
        scene_features = (captioner.model if captioner is not None
                          else SceneCaptioner().model).features
    build = lambda folder, fresh=False: build_modules(
        stage, folder, text.dim, cfg.config, cfg.num_tokens, cfg.levels, head_words,
        cfg.rsrt_backbone, cfg.token_cells, fresh, scene_features)
    if (ckpt / "state.json").is_file():
        state = json.loads((ckpt / "state.json").read_text())
        _check_resumable(ckpt, state, cfg)
        mods, _ = build(ckpt)
        start = state["step"]
        origin = state.get("init")         # what the run started from, not this --init
        src = f"resumed from {ckpt} at step {start}"
    else:
        torch.manual_seed(TRAIN_SEED)   # fresh modules start the same in every run
        mods, src = build(cfg.init, cfg.fresh_rsrt)
        card = Path(cfg.init) / "model_card.json" if cfg.init is not None else None
        start = json.loads(card.read_text()).get("stages", {}).get(stage, {}).get("steps", 0) \
            if card is not None and card.is_file() else 0
        src = f"initialised: {src} (stage step {start})"
        origin = str(cfg.init) if cfg.init is not None else None
    size = mods["unet"].config.sample_size * 2
    mods.to(dev)
    if cfg.freeze_unet:
        mods["unet"].requires_grad_(False)
    if cfg.freeze_scene_backbone and rsrt_scene(mods):
        mods["rsrt_encoder"].scene.requires_grad_(False)
    trainable = [p for p in mods.parameters() if p.requires_grad]
    groups = param_groups(mods, cfg.lr, cfg.rsrt_lr_scale)
    ema = EMAModel(trainable, decay=cfg.ema_decay, use_ema_warmup=True,
                   foreach=dev.type == "cuda")
    opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=1e-2, fused=dev.type == "cuda")
    fresh_optimizer = not (ckpt / "optimizer.pt").is_file()
    if not fresh_optimizer:
        base_lrs = [grp["lr"] for grp in opt.param_groups]
        saved = torch.load(ckpt / "optimizer.pt", weights_only=True, map_location=dev)
        n_saved = sum(len(grp["params"]) for grp in saved["param_groups"])
        if n_saved != len(trainable):
            raise ValueError(f"{ckpt} trained {n_saved} parameter tensors, this run would train "
                             f"{len(trainable)}: resume with the flags it started with "
                             "(--freeze-unet, --freeze-scene-backbone)")
        opt.load_state_dict(regroup_optimizer_state(saved, [len(g["params"]) for g in groups]))
        for grp, base in zip(opt.param_groups, base_lrs):
            grp["lr"] = base       # this run's learning rates, not the checkpoint's
        ema_mods, _ = build(ckpt / "ema")
        ema_mods.to(dev)
        load_ema_state(ema, ckpt / "ema_state.pt",
                       [q for p, q in zip(mods.parameters(), ema_mods.parameters())
                        if p.requires_grad])
        ema.decay = cfg.ema_decay      # this run's decay, not the checkpoint's
    elif start > 0:  # shipped weights are the EMA: keep them as the EMA's start too
        ema.optimization_step = start
    sched = training_scheduler()
    rsrt = stage == "rsrt"
    loop = TrainLoop(f"dpcd {stage}", start, steps, run / "train.log", [opt],
                     warmup(200, start) if fresh_optimizer else None,
                     save_every=cfg.save_every, sample_every=cfg.sample_every,
                     max_minutes=cfg.max_minutes,
                     log_line=_rsrt_log_line(mods) if rsrt else loss_line)
    n_params = {k: round(sum(p.numel() for p in m.parameters()) / 1e6, 3) for k, m in mods.items()}
    loop.print(f"dpcd {stage}: {src}; M params {n_params}; {size}×{size}, batch {batch_size}, "
               f"lr {cfg.lr}{f' (RSRT modules ×{cfg.rsrt_lr_scale:g})' if rsrt else ''}, "
               f"freeze_unet {cfg.freeze_unet}, captions from "
               f"{captions_source(captioner, cfg.photos)} (detail {cfg.caption_detail}); "
               f"device {dev}, bf16 {cfg.bf16}, {cfg.workers} data workers")
    sample_x, sample_captions, sample_hci = _sample_batch(cfg, size, codecs, dev)

    g = torch.Generator().manual_seed(start)
    data = iter(scene_batches(start, steps, batch_size, size, TRAIN_SEED, cfg.workers,
                              cfg.caption_detail)
                if cfg.photos is None else
                PhotoBatches(cfg.photos, batch_size, size, TRAIN_SEED).batches(start, steps)
                if cfg.native_pairs is None else
                _native_batches(cfg.native_pairs, batch_size, size, cfg.hci_root, start, steps))
    mods.train()

    def step_fn(step: int) -> dict:
        b = conditioned_batch(step, batch_size, size, text, codecs, g, captioner,
                              cfg.caption_dropout, cfg.hci_dropout, scenes=next(data))
        x, hci, hci_present, cond, mask = b["x"], b["hci"], b["hci_present"], b["cond"], b["mask"]
        rec = {}
        if rsrt:
            z_tok = mods["rsrt_encoder"](x, hci, b["pooled"])
            fsq = mods["rsrt_encoder"].fsq
            if step < cfg.unquantized_steps:
                q, codes = fsq.normalize(fsq.bound(z_tok)), fsq(z_tok)[1]
            else:
                q, codes = fsq(z_tok)
            present = token_dropout(batch_size, cfg.num_tokens, g).to(dev)
            e = mods["rsrt_embedding"](q=q, present=present)
            cond = torch.cat([cond, e], 1)
            mask = torch.cat([mask, torch.ones(batch_size, cfg.num_tokens, dtype=torch.bool,
                                               device=dev)], 1)
            rec.update(codes=codes.detach(), spread=z_tok.detach().std())
            if cfg.token_attribute_loss:
                attr_loss, shape_right, shape_seen = attribute_loss(
                    mods["rsrt_attribute_head"], captioner.model, x, q, b["pooled"])
                rec["attributes"] = torch.stack([attr_loss.detach(), shape_right, shape_seen])
        x0 = to_model_space(x)
        noise = torch.randn(x0.shape, generator=g).to(dev)
        t = torch.randint(0, sched.config.num_train_timesteps, (batch_size,), generator=g).to(dev)
        xt = sched.add_noise(x0, noise, t)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            pred = denoise(mods["unet"], xt, t, cond, mask, mods["controlnet"],
                           to_model_space(hci), hci_present)
        loss = v_loss(sched, pred.float(), sched.get_velocity(x0, noise, t), t)
        rec["loss"] = loss.detach()   # the denoising loss: comparable with and without extras
        if rsrt:
            loss = loss + 1e-2 * range_penalty(z_tok)
        if cfg.token_attribute_loss:
            loss = loss + cfg.token_attribute_loss * attr_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for params in ([grp["params"] for grp in opt.param_groups] if cfg.token_attribute_loss
                       else [trainable]):
            torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ema.step(trainable)
        return rec

    def save(done: int, loss: float) -> None:
        _save(mods, _ema_modules(mods, ema), ema, opt, ckpt, done, loss, stage,
              cfg.caption_detail, data_name, origin)
        if cfg.export is not None:
            export_dpcd(run, cfg.export, stage, complete=done >= steps, hci_root=cfg.hci_root,
                        hparams=cfg.card_record(origin))

    def sample(done: int) -> None:
        _sample_grid(_ema_modules(mods, ema).eval(), text, sample_x, sample_captions,
                     sample_hci, run / "samples" / f"{stage}-step{done:06d}.png")

    loop.run(step_fn, save, sample)
    return ckpt


def _check_resumable(ckpt: Path, state: dict, cfg: DPCDConfig) -> None:
    """A ValueError naming the fix when ``cfg`` cannot resume the checkpoint ``state``."""
    if cfg.token_attribute_loss and not (ckpt / "rsrt_attribute_head").is_dir():
        raise ValueError(f"{ckpt} was trained without the token attribute loss; its "
                         "optimizer has no state for the attribute head: start a new --run "
                         "with --init PRESET (e.g. the folder this run exported)")
    if state.get("stage") != cfg.stage:
        raise ValueError(f"{ckpt} holds stage {state.get('stage')!r}, not {cfg.stage!r}; use a "
                         "new --run folder and --init the preset exported by that stage")
    if state.get("data", "scenes") != cfg.data_name:
        raise ValueError(f"{ckpt} was trained on {state.get('data', 'scenes')}, not "
                         f"{cfg.data_name}: resume it "
                         + {"photos": "with --photos FOLDER",
                            "native-photos": "with --photos and --native-pairs"}.get(
                             state.get("data"), "without --photos")
                         + ", or start a new --run with --init PRESET")
    if state.get("caption_detail", cfg.caption_detail) != cfg.caption_detail:
        raise ValueError(f"{ckpt} was trained on caption detail "
                         f"{state['caption_detail']!r}, not {cfg.caption_detail!r}; resume with "
                         f"--caption-detail {state['caption_detail']} or start a new --run")


def _sample_batch(cfg: DPCDConfig, size: int, codecs, dev) -> tuple:
    """The fixed images, captions and HCIs of the sample grids."""
    if cfg.native_pairs is not None:  # val photos at native scale, with the whole photo's HCI
        from training.native_pairs import NativePairBatches

        x, captions, hci = NativePairBatches(cfg.native_pairs, 8, size, SAMPLE_SEED,
                                             split="val", hci_root=cfg.hci_root).batch(0)
        return x.to(dev), captions, hci.to(dev)
    if cfg.photos is None:
        scenes = [generate(i, seed=SAMPLE_SEED, size=size) for i in range(8)]
        rgb = np.stack([s[0] for s in scenes])
        captions = [s[1].describe(cfg.caption_detail) for s in scenes]
    else:
        from benchmark.photos import val_tiles

        rgb = val_tiles(cfg.photos, 8, size, seed=SAMPLE_SEED)[0]
        captions = [None] * len(rgb)
    x = (torch.from_numpy(rgb).permute(0, 3, 1, 2) / 255.0).to(dev)
    return x, captions, codecs[min(1, len(codecs) - 1)].reconstruct_batch(x)


def _rsrt_log_line(mods):
    """Log lines of stage rsrt: the loss, then the tokens' health over the last 10 steps."""
    fsq = mods["rsrt_encoder"].fsq

    def line(done: int, window: list[dict], sec_per_step: float) -> str:
        h = code_health(torch.cat([r["codes"] for r in window[-10:]]), fsq.codebook_size)
        out = (f"{loss_line(done, window, sec_per_step)} | tokens distinct "
               f"{np.mean(h['distinct']):.1f} within image {h['within_image']:.2f} "
               f"entropy {np.mean(h['entropy_bits']):.2f}b "
               f"pre-q std {np.mean([float(r['spread']) for r in window]):.2f}")
        if "attributes" in window[0]:
            a = torch.stack([r["attributes"] for r in window]).float()
            out += (f" | attributes loss {a[:, 0].mean():.3f} shape acc "
                    f"{a[:, 1].sum() / a[:, 2].sum().clamp_min(1):.2f}")
        return out
    return line


def _native_batches(folder, batch_size, size, hci_root, start, steps):
    from training.native_pairs import NativePairBatches

    return NativePairBatches(folder, batch_size, size, TRAIN_SEED,
                             hci_root=hci_root).batches(start, steps)


def attribute_loss(head: nn.Module, captioner_model: nn.Module, x: torch.Tensor,
                   q: torch.Tensor, pooled: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The token attribute loss: ``head`` reads tokens ``q`` (B, K, D) and caption embeddings
    ``pooled`` (B, text_dim) and is scored against what ``captioner_model`` reads from the
    sources ``x`` (B, 3, H, W). Returns (loss, shapes read right, shapes seen), scalars."""
    with torch.no_grad():
        targets = attribute_targets(captioner_model(x))
    logits = head(q, pooled)
    seen = targets["shape"] >= 0
    right = (logits["shape"].argmax(-1) == targets["shape"]) & seen
    return captioner_loss(logits, targets), right.sum().float(), seen.sum().float()


def param_groups(mods: nn.ModuleDict, lr: float, rsrt_lr_scale: float = 1.0) -> list[dict]:
    """AdamW parameter groups: the diffusion modules at ``lr``, then (when present) the RSRT
    modules at ``lr * rsrt_lr_scale``, then (when present) the training-only attribute head at
    the same rate. Parameters keep ``mods.parameters()`` order, so the groups' concatenation
    is the EMA's parameter list."""
    main, rsrt, head = [], [], []
    for name, m in mods.items():
        group = head if name in TRAINING_ONLY else rsrt if name.startswith("rsrt_") else main
        group.extend(p for p in m.parameters() if p.requires_grad)
    return [g for g in ({"params": main, "lr": lr}, {"params": rsrt, "lr": lr * rsrt_lr_scale},
                        {"params": head, "lr": lr * rsrt_lr_scale}) if g["params"]]


def regroup_optimizer_state(state: dict, sizes: list[int]) -> dict:
    """An optimizer ``state_dict`` re-split into groups of ``sizes`` parameters (checkpoints
    written before the RSRT modules had their own group hold one group). Parameter ids are
    positions in the flat parameter order, which the split keeps; hyperparameters come from
    the first saved group (the caller sets this run's learning rates)."""
    saved = state["param_groups"]
    if [len(g["params"]) for g in saved] == sizes:
        return state
    ids = [i for g in saved for i in g["params"]]
    if len(ids) != sum(sizes):
        raise ValueError(f"optimizer checkpoint holds {len(ids)} trainable parameters; the "
                         f"modules have {sum(sizes)}: it belongs to another model, or the run "
                         "was started with a different --freeze-unet")
    groups, at = [], 0
    for n in sizes:
        groups.append({**{k: v for k, v in saved[0].items() if k != "params"},
                       "params": ids[at:at + n]})
        at += n
    return {"state": state["state"], "param_groups": groups}


def _ema_modules(mods: nn.ModuleDict, ema: EMAModel) -> nn.ModuleDict:
    """A copy of ``mods`` holding the EMA weights (frozen modules copied as they are)."""
    out = copy.deepcopy(mods)
    params = [q for p, q in zip(mods.parameters(), out.parameters()) if p.requires_grad]
    ema.copy_to(params)
    return out


@torch.no_grad()
def _sample_grid(mods, text, x, captions, hci, path: Path) -> None:
    """Rows: source | HCI (mid) | caption + HCI [+ all tokens] | caption only (prior path);
    photos (``None`` captions): source | HCI | HCI + tokens | no stream at all."""
    emb = mods["rsrt_embedding"] if "rsrt_embedding" in mods else None
    sampler = DPCDSampler(mods["unet"], text, mods["controlnet"], emb)
    codes = None
    if emb is not None:
        sent = torch.tensor([c is not None for c in captions], device=x.device)
        pooled = text.sentence(["" if c is None else c for c in captions]) * sent[:, None]
        codes = mods["rsrt_encoder"].encode(x, hci, pooled)
    g = lambda: torch.Generator().manual_seed(0)
    full = sampler.sample(captions, steps=20, generator=g(), hci=hci, rsrt_codes=codes)
    prior = sampler.sample(captions, steps=20, generator=g())
    save_grid(torch.cat([x, hci, full, prior]), path)


def _save(mods, ema_mods, ema, opt, ckpt: Path, step: int, loss: float, stage: str,
          caption_detail: str = "full", data: str = "scenes", init: str | None = None) -> None:
    with atomic_folder(ckpt) as tmp:
        for name, m in mods.items():
            m.save_pretrained(tmp / name)
            ema_mods[name].save_pretrained(tmp / "ema" / name)
        torch.save(opt.state_dict(), tmp / "optimizer.pt")
        save_ema_state(ema, tmp / "ema_state.pt")
        (tmp / "state.json").write_text(json.dumps({"stage": stage, "step": step, "loss": loss,
                                                    "caption_detail": caption_detail,
                                                    "data": data, "init": init}) + "\n")


def export_dpcd(run: str | Path, out: str | Path, stage: str, complete: bool = False,
                hparams: dict | None = None, hci_root: str | Path | None = None) -> Path:
    """Write ``run``'s EMA modules into the preset folder ``out`` and update its model card.

    UNet and ControlNet are stored fp16 (halves the files; cast back to fp32 on load), the
    small RSRT modules fp32. A folder without ``preset.json`` gets one (named after the
    folder, HCI rate points from ``hci_root`` as a path relative to it; the decode settings
    and size of the run's ``--init`` preset when it has one), so the export loads with
    ``SDGIC.from_pretrained``. ``hparams["caption_detail"]`` (what the training captions
    stated) becomes the preset's ``caption_detail``, so senders caption as it was trained; a
    preset without its own ``caption_model`` gets one fitted to that detail. A run on photos
    (``hparams["photos"]``) sets ``"caption_stream": false``: its decoder never saw a caption.
    """
    run, out = Path(run), Path(out)
    ema_dir = run / "checkpoint" / "ema"
    state = json.loads((run / "checkpoint" / "state.json").read_text())
    for d in sorted(p for p in ema_dir.iterdir() if p.is_dir() and p.name not in TRAINING_ONLY):
        half = d.name in ("unet", "controlnet")
        m = MODULE_CLASSES[d.name].from_pretrained(
            d, torch_dtype=torch.float16 if half else torch.float32)
        m.save_pretrained(out / d.name)
    from codec.preset import PRESET_FILE, Preset

    hci_rel = os.path.relpath(Path(hci_root or "codec/weights/hci-64").resolve(), out.resolve())
    init = Path(state["init"]) if state.get("init") else None
    if (out / PRESET_FILE).is_file():
        cfg = Preset.load(out)
    elif init is not None and (init / PRESET_FILE).is_file() and init.resolve() != out.resolve():
        # a new preset from a trained one: its decode settings, this run's HCI and modules
        cfg = Preset.load(init).replace(name=out.name, hci_root=hci_rel, modules=".",
                                        num_tokens=None, caption_model=None,
                                        caption_detail="full", folder=out)
    else:
        unet_cfg = json.loads((ema_dir / "unet" / "config.json").read_text())
        cfg = Preset(out.name, unet_cfg["sample_size"] * 2, hci_rel, tuple(HCI_POINTS),
                     "mid", folder=out)
    new = cfg
    detail = (hparams or {}).get("caption_detail")
    if detail not in (None, "full") and not cfg.caption_model:
        # the shipped caption model is fitted to full captions: fit one to this detail
        from benchmark.scene_captions import fit_scene_model
        from codec.streams.caption_coder import CaptionCoder

        CaptionCoder(fit_scene_model(detail)).save(out / "caption_model.json")
        new = new.replace(caption_model="caption_model.json")
    if detail is not None and cfg.caption_detail != detail:
        new = new.replace(caption_detail=detail)
    if (hparams or {}).get("photos"):   # trained without captions: senders send none
        new = new.replace(caption_stream=False)
    if (hparams or {}).get("native_pairs"):   # trained at native scale: its own modules now
        new = new.replace(modules=".", size="native",
                          tile_overlap=(cfg.tile_overlap if cfg.size == "native"
                                        else cfg.resolution // 4 // 2 * 2))   # 64 -> 16
    if new != cfg or not (out / PRESET_FILE).is_file():
        new.save(out)
    card_path = out / "model_card.json"
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    log = (run / "train.log").read_text().splitlines() if (run / "train.log").is_file() else []
    steps_lines = [l for l in log if l.startswith("step ")]
    card.update({"preset": out.name, "status": "complete" if complete else "in-progress"})
    # Keys this export does not set (e.g. notes on earlier segments of the run, another
    # machine's hardware) are kept; the ones it sets describe the latest segment.
    stages = card.setdefault("stages", {})
    detail_flag = "" if detail in (None, "full") else f" --caption-detail {detail}"
    attr = (hparams or {}).get("token_attribute_loss") or 0
    attr_flag = f" --token-attribute-loss {attr:g}" if attr else ""
    photos = (hparams or {}).get("photos")
    native = (hparams or {}).get("native_pairs")
    photos_flag = (f" --photos {photos}" if photos else "") + (
        f" --native-pairs {native} --hci {hci_root}" if native else "")
    stages[stage] = {**stages.get(stage, {}), **{
        "what": {"control": "ControlNet (HCI path) + UNet trained with caption/HCI dropout",
                 "rsrt": "RSRT encoder + embedding trained jointly with UNet and ControlNet "
                         "through the denoising loss, with token dropout"
                         + (" and the token attribute loss" if attr else "")}[stage],
        "training_command": (hparams or {}).get("command") or (
            f"sdgic train dpcd --stage {stage} --run {run} --init {out} --export {out}"
            + detail_flag + attr_flag + photos_flag),
        "commit": git_commit(),
        "data": (f"endless procedural scenes, data set seed {TRAIN_SEED}" if not photos else
                 f"native-scale crops of the whole train photos of {photos} and of their "
                 f"HCI ({native}: sdgic data native-pairs; crop seed {TRAIN_SEED}), no captions"
                 if native else
                 f"random crops of the train tiles of the photo set {photos} (sdgic data "
                 f"photos; crop seed {TRAIN_SEED}), no captions")
                + f"; HCIs at rate points {list(HCI_POINTS)}",
        "steps": state["step"], **{k: v for k, v in (hparams or {}).items() if k != "command"},
        "loss_last_100_steps": round(state["loss"], 5),
        "last_log_line": steps_lines[-1] if steps_lines else None,
        "samples": f"runs/<run>/samples/{stage}-stepNNNNNN.png (rows: source, HCI mid, "
                   + ("HCI+tokens, no stream (photos: no captions)" if photos else
                      "caption+HCI[+tokens], caption only") + ")",
    }}
    write_model_card(out, card)
    return out
