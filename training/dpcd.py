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
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import ControlNetModel, UNet2DConditionModel
from diffusers.training_utils import EMAModel
from torch import nn
from tqdm import tqdm

from benchmark import seeds
from benchmark.captioner import SceneCaptioner, attribute_targets, captioner_loss
from benchmark.scenes import generate
from codec.dpcd.configs import controlnet_kwargs, unet_config
from codec.dpcd.decoder import DPCDSampler, denoise, to_model_space, training_scheduler
from codec.dpcd.rsrt import RSRTEmbedding, RSRTEncoder, code_health, range_penalty
from codec.preset import check_caption_detail
from codec.provenance import git_commit, write_model_card
from codec.streams.hci import HCICodec
from codec.text_encoder import TextEncoder
from training.dpcd_data import (PhotoBatches, StopFlag, replace_checkpoint, save_grid, scene_batch,
                                scene_batches, v_loss)
from training.token_head import TokenAttributeHead

TRAIN_SEED = seeds.PRIOR_TRAIN    # the prior's training scenes (never used for evaluation)
SAMPLE_SEED = seeds.PRIOR_SAMPLES
STAGES = ("control", "rsrt")
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


def _load(name: str, folder: Path):
    cls = MODULE_CLASSES[name]
    return cls.from_pretrained(folder, torch_dtype=torch.float32)


def build_modules(stage: str, init: str | Path | None, text_dim: int, config: str = "scenes-64",
                  num_tokens: int = 8, levels=(8, 5, 5, 5),
                  attribute_head_words: int | None = None) -> tuple[nn.ModuleDict, str]:
    """The stage's modules from a preset folder ``init`` (missing ones made fresh).

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
        for name, kw in (("rsrt_encoder", dict(text_dim=text_dim)), ("rsrt_embedding", dict(dim=text_dim))):
            if init is not None and (init / name / "config.json").is_file():
                mods[name] = _load(name, init / name)
                src.append(f"{name} from preset")
            else:
                mods[name] = MODULE_CLASSES[name](num_tokens=num_tokens, levels=tuple(levels), **kw)
                src.append(f"fresh {name}")
        head = "rsrt_attribute_head"
        if init is not None and (init / head / "config.json").is_file():
            mods[head] = _load(head, init / head)
            src.append(f"{head} from {init}")
        elif attribute_head_words is not None:
            mods[head] = TokenAttributeHead(num_tokens=num_tokens, token_dim=len(levels),
                                            text_dim=text_dim, num_words=attribute_head_words)
            src.append(f"fresh {head}")
    return mods, ", ".join(src)


def train_dpcd(run: str | Path, stage: str = "control", steps: int = 20000,
               batch_size: int = 16, lr: float = 1e-4, init: str | Path | None = None,
               hci_root: str | Path = "codec/weights/hci-64", config: str = "scenes-64",
               caption_dropout: float = 0.15, hci_dropout: float = 0.2,
               freeze_unet: bool = False, num_tokens: int = 8, levels=(8, 5, 5, 5),
               unquantized_steps: int = 300, ema_decay: float = 0.999, save_every: int = 250,
               sample_every: int = 1000, threads: int | None = None,
               max_minutes: float | None = None, export: str | Path | None = None,
               captioner: str | Path | None = None, device: str = "cpu", workers: int = 0,
               bf16: bool = False, text_encoder: str | Path | None = None,
               rsrt_lr_scale: float = 1.0, caption_detail: str = "full",
               token_attribute_loss: float = 0.0, photos: str | Path | None = None,
               native_pairs: str | Path | None = None, command: str | None = None) -> Path:
    """Train (or resume) stage ``stage`` in ``run``; returns the checkpoint folder.

    ``device``: where the modules train (``"cuda"`` on a GPU machine); ``workers``: processes
    rendering scene batches ahead of the loop (0: in the loop, enough on CPU); ``bf16``:
    autocast the UNet and ControlNet to bfloat16 (the RSRT encoder and the loss stay fp32);
    ``text_encoder``: caption encoder folder (default: the offline MiniLM). ``sample_every``
    0 draws no sample grids (draw them later from the export).

    ``captioner``: a ``SceneCaptioner`` folder; when given, each training image's caption is
    what that captioner writes for it (as a sender would), instead of the ground truth, so the
    decoder and the tokens learn to live with (and the tokens to correct) its mistakes.
    ``caption_detail``: how much the captions state (``"full"``, or ``"layout"``: colour and
    position only, so the tokens must carry shape, size and texture); a preset trained on
    ``"layout"`` sets ``"caption_detail": "layout"`` in its preset.json.

    ``export``: a preset folder refreshed at every checkpoint with the EMA modules (UNet and
    ControlNet as fp16 safetensors) and an in-progress model card, ready to commit.

    ``rsrt_lr_scale``: the RSRT encoder and embedding learn at ``lr * rsrt_lr_scale`` (stage
    rsrt): their gradient arrives through cross-attention and is much weaker than the UNet's.

    ``token_attribute_loss``: weight of an auxiliary loss (stage rsrt, needs ``captioner``): a
    training-only ``TokenAttributeHead`` reads the tokens and the caption embedding and must
    recover what the captioner reads from the source (every object's attributes and the
    background), so the tokens get a direct gradient toward what the caption leaves out. With
    it on, each parameter group (diffusion modules, RSRT modules, head) is gradient-clipped
    on its own (the auxiliary gradient would otherwise eat the shared clipping budget). A run
    started without it cannot resume with it (its optimizer has no state for the head).

    ``photos``: a photo set folder (``sdgic data photos``): train on its train tiles, with no
    captions, instead of scenes (no ``captioner``; ``workers`` are not used).

    ``command``: the command line that started this run, written into the exported model card
    as it is (default: one rebuilt from the arguments that change the result).

    ``native_pairs``: a :mod:`training.native_pairs` folder (``sdgic data native-pairs``):
    train at native scale on aligned crops of whole photos and of *their* HCI (made with
    ``hci_root``, which must be the photo HCI the folder was built with), for a
    ``"size": "native"`` preset; needs ``photos`` (the same photo set, for the records).
    """
    if stage not in STAGES:
        raise ValueError(f"stage={stage!r}; expected one of {STAGES}")
    for name, p in (("caption_dropout", caption_dropout), ("hci_dropout", hci_dropout)):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"{name}={p} must be in [0, 1)")
    check_caption_detail(caption_detail)
    if not 0.0 < ema_decay < 1.0:
        raise ValueError(f"ema_decay={ema_decay} must be in (0, 1)")
    if not rsrt_lr_scale > 0:
        raise ValueError(f"rsrt_lr_scale={rsrt_lr_scale} must be > 0")
    if token_attribute_loss < 0:
        raise ValueError(f"token_attribute_loss={token_attribute_loss} must be >= 0")
    if token_attribute_loss and (stage != "rsrt" or captioner is None):
        raise ValueError("token_attribute_loss needs stage='rsrt' and a captioner (the head "
                         "learns what the captioner reads from the source image)")
    if photos is not None and (captioner is not None or caption_detail != "full"):
        raise ValueError("photos have no captions: --photos cannot be combined with "
                         "--captioner or a --caption-detail other than full")
    if native_pairs is not None and photos is None:
        raise ValueError("--native-pairs needs --photos (the photo set it was built from)")
    if photos is not None and workers:
        raise ValueError("--workers renders scene batches; photo batches are cut in the loop "
                         "(drop --workers)")
    data_name = ("scenes" if photos is None else
                 "photos" if native_pairs is None else "native-photos")
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device={device!r} but torch sees no CUDA device")
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    run = Path(run)
    ckpt = run / "checkpoint"
    (run / "samples").mkdir(parents=True, exist_ok=True)
    text = TextEncoder(text_encoder, device=str(dev))
    codecs = load_hci_codecs(hci_root)
    for c in codecs:
        c.model.to(dev)
    if captioner is not None:
        captioner = SceneCaptioner(captioner, detail=caption_detail)
        captioner.model.to(dev)
    head_words = captioner.model.config.num_words if token_attribute_loss else None
    if (ckpt / "state.json").is_file():
        state = json.loads((ckpt / "state.json").read_text())
        if token_attribute_loss and not (ckpt / "rsrt_attribute_head").is_dir():
            raise ValueError(f"{ckpt} was trained without the token attribute loss; its "
                             "optimizer has no state for the attribute head: start a new --run "
                             "with --init PRESET (e.g. the folder this run exported)")
        if state.get("stage") != stage:
            raise ValueError(f"{ckpt} holds stage {state.get('stage')!r}, not {stage!r}; use a "
                             "new --run folder and --init the preset exported by that stage")
        if state.get("data", "scenes") != data_name:
            raise ValueError(f"{ckpt} was trained on {state.get('data', 'scenes')}, not "
                             f"{data_name}: resume it "
                             + {"photos": "with --photos FOLDER",
                                "native-photos": "with --photos and --native-pairs"}.get(
                                 state.get("data"), "without --photos")
                             + ", or start a new --run with --init PRESET")
        if state.get("caption_detail", caption_detail) != caption_detail:
            raise ValueError(f"{ckpt} was trained on caption detail "
                             f"{state['caption_detail']!r}, not {caption_detail!r}; resume with "
                             f"--caption-detail {state['caption_detail']} or start a new --run")
        mods, _ = build_modules(stage, ckpt, text.dim, config, num_tokens, levels, head_words)
        start = state["step"]
        origin = state.get("init")         # what the run started from, not this --init
        src = f"resumed from {ckpt} at step {start}"
    else:
        torch.manual_seed(TRAIN_SEED)   # fresh modules start the same in every run
        mods, src = build_modules(stage, init, text.dim, config, num_tokens, levels, head_words)
        card = Path(init) / "model_card.json" if init is not None else None
        start = json.loads(card.read_text()).get("stages", {}).get(stage, {}).get("steps", 0) \
            if card is not None and card.is_file() else 0
        src = f"initialised: {src} (stage step {start})"
        origin = str(init) if init is not None else None
    size = mods["unet"].config.sample_size * 2
    mods.to(dev)
    if freeze_unet:
        mods["unet"].requires_grad_(False)
    trainable = [p for p in mods.parameters() if p.requires_grad]
    groups = param_groups(mods, lr, rsrt_lr_scale)
    ema = EMAModel(trainable, decay=ema_decay, use_ema_warmup=True, foreach=dev.type == "cuda")
    opt = torch.optim.AdamW(groups, lr=lr, weight_decay=1e-2, fused=dev.type == "cuda")
    base_lrs = [grp["lr"] for grp in opt.param_groups]
    fresh_optimizer = not (ckpt / "optimizer.pt").is_file()
    if not fresh_optimizer:
        saved = torch.load(ckpt / "optimizer.pt", weights_only=True, map_location=dev)
        opt.load_state_dict(regroup_optimizer_state(saved, [len(g["params"]) for g in groups]))
        for grp, base in zip(opt.param_groups, base_lrs):
            grp["lr"] = base       # this run's learning rates, not the checkpoint's
        ema_mods, _ = build_modules(stage, ckpt / "ema", text.dim, config, num_tokens, levels,
                                    head_words)
        ema_mods.to(dev)
        ema_params = [q for p, q in zip(mods.parameters(), ema_mods.parameters()) if p.requires_grad]
        ema.load_state_dict({**torch.load(ckpt / "ema_state.pt", weights_only=True),
                             "shadow_params": [q.detach().clone() for q in ema_params]})
        ema.decay = ema_decay      # this run's decay, not the checkpoint's
    elif start > 0:  # shipped weights are the EMA: keep them as the EMA's start too
        ema.optimization_step = start
    sched = training_scheduler()
    log = open(run / "train.log", "a")
    n_params = {k: round(sum(p.numel() for p in m.parameters()) / 1e6, 3) for k, m in mods.items()}
    print(f"dpcd {stage}: {src}; M params {n_params}; {size}×{size}, batch {batch_size}, "
          f"lr {lr}{f' (RSRT modules ×{rsrt_lr_scale:g})' if stage == 'rsrt' else ''}, freeze_unet {freeze_unet}, captions from "
          f"{captions_source(captioner, photos)} (detail {caption_detail}); device {dev}, "
          f"bf16 {bf16}, {workers} data workers", file=log, flush=True)

    if photos is None:
        sample_scenes = [generate(i, seed=SAMPLE_SEED, size=size) for i in range(8)]
        sample_rgb = np.stack([s[0] for s in sample_scenes])
        sample_captions = [s[1].describe(caption_detail) for s in sample_scenes]
    elif native_pairs is None:
        from benchmark.photos import val_tiles

        sample_rgb = val_tiles(photos, 8, size, seed=SAMPLE_SEED)[0]
        sample_captions = [None] * len(sample_rgb)
    if native_pairs is None:
        sample_x = (torch.from_numpy(sample_rgb).permute(0, 3, 1, 2) / 255.0).to(dev)
        sample_hci = codecs[min(1, len(codecs) - 1)].reconstruct_batch(sample_x)
    else:                       # val photos at native scale, with the HCI of the whole photo
        from training.native_pairs import NativePairBatches

        sample_x, sample_captions, sample_hci = NativePairBatches(
            native_pairs, 8, size, SAMPLE_SEED, split="val", hci_root=hci_root).batch(0)
        sample_x, sample_hci = sample_x.to(dev), sample_hci.to(dev)

    g = torch.Generator().manual_seed(start)
    stop = StopFlag()
    t_start = time.time()
    bar = tqdm(range(start, steps), initial=start, total=steps, desc=f"dpcd {stage}", unit="step")
    data = (scene_batches(start, steps, batch_size, size, TRAIN_SEED, workers, caption_detail)
            if photos is None else
            PhotoBatches(photos, batch_size, size, TRAIN_SEED).batches(start, steps)
            if native_pairs is None else
            _native_batches(native_pairs, batch_size, size, hci_root, start, steps))
    mods.train()
    # Per-step scalars stay on the device until a log line needs them (no sync per step).
    losses, recent_codes, spreads, pending, attr_pending = [], [], [], [], []
    for step, scenes in zip(bar, data):
        warm = min(1.0, (step + 1 - start) / 200) if fresh_optimizer else 1.0
        for group, base in zip(opt.param_groups, base_lrs):
            group["lr"] = base * warm
        b = conditioned_batch(step, batch_size, size, text, codecs, g, captioner,
                              caption_dropout, hci_dropout, scenes=scenes)
        x, hci, hci_present, cond, mask = b["x"], b["hci"], b["hci_present"], b["cond"], b["mask"]
        if stage == "rsrt":
            z_tok = mods["rsrt_encoder"](x, hci, b["pooled"])
            fsq = mods["rsrt_encoder"].fsq
            if step < unquantized_steps:
                q, codes = fsq.normalize(fsq.bound(z_tok)), fsq(z_tok)[1]
            else:
                q, codes = fsq(z_tok)
            present = token_dropout(batch_size, num_tokens, g).to(dev)
            e = mods["rsrt_embedding"](q=q, present=present)
            cond = torch.cat([cond, e], 1)
            mask = torch.cat([mask, torch.ones(batch_size, num_tokens, dtype=torch.bool,
                                               device=dev)], 1)
            recent_codes = (recent_codes + [codes.detach()])[-10:]
            spread = z_tok.detach().std()
            if token_attribute_loss:
                attr_loss, shape_right, shape_seen = attribute_loss(
                    mods["rsrt_attribute_head"], captioner.model, x, q, b["pooled"])
                attr_pending.append(torch.stack([attr_loss.detach(), shape_right, shape_seen]))
        x0 = to_model_space(x)
        noise = torch.randn(x0.shape, generator=g).to(dev)
        t = torch.randint(0, sched.config.num_train_timesteps, (batch_size,), generator=g).to(dev)
        xt = sched.add_noise(x0, noise, t)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            pred = denoise(mods["unet"], xt, t, cond, mask, mods["controlnet"],
                           to_model_space(hci), hci_present)
        loss = v_loss(sched, pred.float(), sched.get_velocity(x0, noise, t), t)
        logged = loss.detach()      # the denoising loss: comparable with and without extras
        if stage == "rsrt":
            loss = loss + 1e-2 * range_penalty(z_tok)
        if token_attribute_loss:
            loss = loss + token_attribute_loss * attr_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for params in ([grp["params"] for grp in opt.param_groups] if token_attribute_loss
                       else [trainable]):
            torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ema.step(trainable)
        pending.append(torch.stack([logged, spread]) if stage == "rsrt" else logged[None])
        done = step + 1
        out_of_time = (max_minutes is not None and time.time() - t_start > 60 * max_minutes) \
            or stop.requested
        saving = done % save_every == 0 or done == steps or out_of_time
        if done % 25 == 0 or saving:
            flushed = torch.stack(pending).float().cpu()
            pending = []
            losses.extend(flushed[:, 0].tolist())
            if stage == "rsrt":
                spreads.extend(flushed[:, 1].tolist())
        if done % 25 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-25:]):.4f}")
            line = (f"step {done} loss {np.mean(losses[-25:]):.5f} "
                    f"{(time.time() - t_start) / len(losses):.2f}s/step")
            if recent_codes:
                h = code_health(torch.cat(recent_codes), fsq.codebook_size)
                line += (f" | tokens distinct {np.mean(h['distinct']):.1f} entropy "
                         f"{np.mean(h['entropy_bits']):.2f}b pre-q std {np.mean(spreads[-25:]):.2f}")
            if attr_pending:
                a = torch.stack(attr_pending).float().cpu()
                attr_pending = []
                line += (f" | attributes loss {a[:, 0].mean():.3f} shape acc "
                         f"{a[:, 1].sum() / a[:, 2].sum().clamp_min(1):.2f}")
            print(line, file=log, flush=True)
        if saving:
            ema_mods = _ema_modules(mods, ema)
            _save(mods, ema_mods, ema, opt, ckpt, done, float(np.mean(losses[-100:])), stage,
                  caption_detail, data_name, origin)
            if export is not None:
                export_dpcd(run, export, stage, complete=done >= steps, hci_root=hci_root,
                            hparams=dict(batch_size=batch_size, lr=lr,
                                         **({"rsrt_lr_scale": rsrt_lr_scale}
                                            if stage == "rsrt" else {}),
                                         hci_dropout=hci_dropout,
                                         caption_dropout=caption_dropout, freeze_unet=freeze_unet,
                                         caption_detail=caption_detail,
                                         **({"token_attribute_loss": token_attribute_loss}
                                            if stage == "rsrt" else {}),
                                         captions=captions_source(captioner, photos),
                                         ema_decay=ema_decay,
                                         **({"photos": str(photos)} if photos is not None
                                            else {}),
                                         **({"native_pairs": str(native_pairs)}
                                            if native_pairs is not None else {}),
                                         **({"init": origin} if origin is not None else {}),
                                         **({"command": command} if command else {})))
        if sample_every and (done % sample_every == 0 or done == steps or out_of_time):
            ema_mods = _ema_modules(mods, ema).eval()
            _sample_grid(ema_mods, text, sample_x, sample_captions, sample_hci,
                         run / "samples" / f"{stage}-step{done:06d}.png")
        if out_of_time:
            why = "SIGTERM/SIGINT" if stop.requested else "--max-minutes reached"
            print(f"stopping at step {done}: {why}; checkpoint saved", file=log, flush=True)
            break
    stop.restore()
    log.close()
    return ckpt


def _native_batches(folder, batch_size, size, hci_root, start, steps):
    from training.native_pairs import NativePairBatches

    return NativePairBatches(folder, batch_size, size, TRAIN_SEED,
                             hci_root=hci_root).batches(start, steps)


def captions_source(captioner, photos) -> str:
    """Where the training captions come from, in words (logs and model cards)."""
    if photos is not None:
        return "none (photos have no offline caption source)"
    return "scene captioner" if captioner is not None else "ground truth"


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
    tmp = ckpt.with_name(ckpt.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for name, m in mods.items():
        m.save_pretrained(tmp / name)
        ema_mods[name].save_pretrained(tmp / "ema" / name)
    torch.save(opt.state_dict(), tmp / "optimizer.pt")
    st = ema.state_dict()
    st.pop("shadow_params", None)
    torch.save(st, tmp / "ema_state.pt")
    (tmp / "state.json").write_text(json.dumps({"stage": stage, "step": step, "loss": loss,
                                                "caption_detail": caption_detail,
                                                "data": data, "init": init}) + "\n")
    replace_checkpoint(tmp, ckpt)


def export_dpcd(run: str | Path, out: str | Path, stage: str, complete: bool = False,
                hparams: dict | None = None, hci_root: str | Path | None = None) -> Path:
    """Write ``run``'s EMA modules into the preset folder ``out`` and update its model card.

    UNet and ControlNet are stored fp16 (halves the files; cast back to fp32 on load), the
    small RSRT modules fp32. A folder without ``preset.json`` gets one (named after the
    folder, HCI rate points from ``hci_root``), so the export loads with
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

    if (out / PRESET_FILE).is_file():
        cfg = Preset.load(out)
    else:
        unet_cfg = json.loads((ema_dir / "unet" / "config.json").read_text())
        cfg = Preset(out.name, unet_cfg["sample_size"] * 2,
                     str(Path(hci_root or "codec/weights/hci-64").resolve()), tuple(HCI_POINTS),
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
