"""Every training stage's settings, one dataclass each (``training.config.StageConfig``):
their fields make the stage's flags (``sdgic train <stage>`` and ``python -m training.X``) and
its model-card record. This module is light (no torch), so ``sdgic --help`` stays fast; each
config names the function that runs it (``runner``, imported when the stage runs).

    cfg = STAGE_CONFIGS["prior"](run="runs/prior", steps=500)
    run_stage(cfg)
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import ClassVar, Optional

from benchmark import seeds
from codec.preset import CAPTION_DETAILS, check_caption_detail
from training.config import StageConfig, option

__all__ = ["STAGE_CONFIGS", "STAGES", "run_stage", "captions_source", "PriorConfig",
           "DPCDConfig", "RegressionConfig", "JudgeConfig", "CaptionerConfig", "HCIConfig",
           "HCIPhotosConfig"]

STAGES = ("control", "rsrt")     # the stages of ``sdgic train dpcd``
DEFAULT_LMBDAS = (2e-6, 8e-6, 3e-5, 1.2e-4)   # the photo HCI's rate points (low … top)
THREADS = "torch threads (default: all cores)"
MAX_MINUTES = "save and stop after this long"


def captions_source(captioner, photos) -> str:
    """Where the training captions come from, in words (logs and model cards)."""
    if photos is not None:
        return "none (photos have no offline caption source)"
    return "scene captioner" if captioner is not None else "ground truth"




@dataclass
class PriorConfig(StageConfig):
    """DPCD stage 1: the caption-conditioned UNet prior (resumable)."""

    runner: ClassVar[str] = "training.prior:run_prior"
    run: str = option(None, "run folder (checkpoint/, samples/, train.log)", required=True)
    steps: int = option(30000, "step count to reach", positive=True)
    batch_size: int = option(16, "images per step", positive=True)
    lr: float = option(2e-4, "peak learning rate (500-step warm-up)", positive=True)
    config: str = option("scenes-64", "network size of a fresh UNet (codec/dpcd/configs.py)")
    caption_dropout: float = option(0.15, "fraction of images trained with the null caption")
    ema_decay: float = option(0.999, "EMA decay of the exported weights")
    save_every: int = option(250, "steps between checkpoints (and exports)", positive=True)
    sample_every: int = option(1000, "steps between sample grids (0: none)")
    init: Optional[str] = option(None, "start from this UNet folder when the run has no "
                                       "checkpoint")
    threads: Optional[int] = option(None, THREADS, type=int, positive=True)
    max_minutes: Optional[float] = option(None, MAX_MINUTES, type=float, positive=True)
    export: Optional[str] = option(None, "preset folder to refresh (fp16 EMA UNet + model card) "
                                         "at every checkpoint")


@dataclass
class DPCDConfig(StageConfig):
    """DPCD stage 2 (control: ControlNet on the HCI) or 3 (rsrt: residual tokens),
    resumable."""

    runner: ClassVar[str] = "training.dpcd:run_dpcd"
    run: str = option(None, "run folder (checkpoint/, samples/, train.log)", required=True)
    stage: str = option("control", "control: ControlNet on the HCI; rsrt: residual tokens",
                        choices=STAGES, required=True)
    steps: int = option(20000, "step count to reach", positive=True)
    batch_size: int = option(16, "images per step", positive=True)
    lr: float = option(1e-4, "peak learning rate (200-step warm-up on fresh optimizers)",
                       positive=True)
    init: Optional[str] = option(None, "preset folder to start from when the run has no "
                                       "checkpoint (e.g. codec/weights/scenes-64)")
    hci_root: str = option("codec/weights/hci-64", "HCI rate-point folders", flag="--hci")
    config: str = option("scenes-64", "network sizes of fresh modules (codec/dpcd/configs.py)")
    caption_dropout: float = option(0.15, "fraction of images trained with the null caption")
    hci_dropout: float = option(0.2, "fraction of images trained without their HCI")
    freeze_unet: bool = option(False, "train the new modules only")
    num_tokens: int = option(8, "RSRT tokens of fresh modules", positive=True)
    levels: tuple = option((8, 5, 5, 5), "FSQ levels of fresh RSRT modules", type=int)
    unquantized_steps: int = option(300, "first steps of stage rsrt without FSQ rounding")
    ema_decay: float = option(0.999, "EMA decay of the exported weights (lower follows a short "
                                     "fine-tune faster: 0.995 averages over about 200 steps)")
    save_every: int = option(250, "steps between checkpoints (and exports)", positive=True)
    sample_every: int = option(1000, "steps between sample grids (0: none)")
    threads: Optional[int] = option(None, "torch threads (default: all cores)", type=int,
                                    positive=True)
    max_minutes: Optional[float] = option(None, "save and stop after this long", type=float,
                                          positive=True)
    export: Optional[str] = option(None, "preset folder to refresh (EMA modules + model card) "
                                         "at every checkpoint")
    captioner: Optional[str] = option(
        None, "SceneCaptioner folder: train on its captions instead of the ground truth (e.g. "
              "benchmark/weights/captioner), so the tokens learn to correct its mistakes")
    device: str = option("cpu", "torch device to train on (e.g. cuda)")
    workers: int = option(0, "processes rendering scene batches ahead of the loop (use on a GPU)")
    bf16: bool = option(False, "bfloat16 autocast for UNet + ControlNet (RSRT and loss fp32)")
    text_encoder: Optional[str] = option(None, "caption encoder folder (default: offline MiniLM)")
    rsrt_lr_scale: float = option(1.0, "learning-rate multiplier for the RSRT encoder and "
                                       "embedding (their gradient arrives through "
                                       "cross-attention, weaker than the UNet's)", positive=True)
    caption_detail: str = option(
        "full", "what captions state: every attribute (full) or each object's colour and "
                "position only (layout: shape, size and texture are left to the tokens)",
        choices=CAPTION_DETAILS)
    token_attribute_loss: float = option(
        0.0, "weight of an auxiliary loss pulling the tokens toward what the captioner reads "
             "from the source and the caption leaves out (stage rsrt, needs --captioner; 0: off)",
        metavar="W")
    rsrt_backbone: str = option(
        "conv", "token encoder of fresh RSRT modules: conv (small convolutions learned from "
                "scratch) or scene (plus the scene captioner's feature stack, loaded from "
                "--captioner or the shipped captioner, so the tokens see shape, size and "
                "texture from the first step)", choices=("conv", "scene"))
    token_cells: int = option(
        0, "fresh RSRT modules: tie token k to cell k of a C x C grid (--num-tokens = C*C; "
           "0: every token sees the whole image)", metavar="C")
    fresh_rsrt: bool = option(False, "start the RSRT encoder and embedding fresh even when "
                                     "--init has them (a new token design on a trained decoder)")
    freeze_scene_backbone: bool = option(False, "keep the captioner's feature stack in the "
                                                "token encoder fixed (default: fine-tune it)")
    photos: Optional[str] = option(
        None, "train on natural photos (a `sdgic data photos` folder, e.g. data/photos), with no "
              "captions, instead of scenes", metavar="FOLDER")
    native_pairs: Optional[str] = option(
        None, "with --photos: train at native scale on crops of whole photos and of their HCI "
              "(a `sdgic data native-pairs` folder; --hci must be the photo HCI it was built "
              "with), for a native-size preset", metavar="FOLDER")
    command: Optional[str] = option(None, "the command line that started the run", cli=False)

    def check(self) -> "DPCDConfig":
        """Raise a ValueError naming the first inconsistent setting."""
        if self.stage not in STAGES:
            raise ValueError(f"stage={self.stage!r}; expected one of {STAGES}")
        for name in ("caption_dropout", "hci_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name}={getattr(self, name)} must be in [0, 1)")
        check_caption_detail(self.caption_detail)
        if not 0.0 < self.ema_decay < 1.0:
            raise ValueError(f"ema_decay={self.ema_decay} must be in (0, 1)")
        if not self.rsrt_lr_scale > 0:
            raise ValueError(f"rsrt_lr_scale={self.rsrt_lr_scale} must be > 0")
        if self.token_attribute_loss < 0:
            raise ValueError(f"token_attribute_loss={self.token_attribute_loss} must be >= 0")
        if self.token_attribute_loss and (self.stage != "rsrt" or self.captioner is None):
            raise ValueError("token_attribute_loss needs stage='rsrt' and a captioner (the head "
                             "learns what the captioner reads from the source image)")
        if self.photos is not None and (self.captioner is not None
                                        or self.caption_detail != "full"):
            raise ValueError("photos have no captions: --photos cannot be combined with "
                             "--captioner or a --caption-detail other than full")
        if self.native_pairs is not None and self.photos is None:
            raise ValueError("--native-pairs needs --photos (the photo set it was built from)")
        if self.photos is not None and self.workers:
            raise ValueError("--workers renders scene batches; photo batches are cut in the "
                             "loop (drop --workers)")
        return self

    @property
    def data_name(self) -> str:
        return ("scenes" if self.photos is None else
                "photos" if self.native_pairs is None else "native-photos")

    def card_record(self, origin: str | None) -> dict:
        """What the model card's stage entry records: every training setting (not the run's
        machinery: threads, device, periods, paths of this machine's run folder)."""
        skip = {"run", "stage", "steps", "threads", "max_minutes", "export", "device",
                "workers", "save_every", "sample_every", "command", "init", "text_encoder",
                "hci_root", "config"}
        rec = {k: v for k, v in self.record().items() if k not in skip}
        if self.stage != "rsrt":
            for k in ("rsrt_lr_scale", "token_attribute_loss", "num_tokens", "levels",
                      "unquantized_steps"):
                rec.pop(k)
        rec["captions"] = captions_source(self.captioner, self.photos)
        for k in ("photos", "native_pairs", "captioner"):
            if rec.get(k) is None:
                rec.pop(k, None)
        if origin is not None:
            rec["init"] = origin
        if self.command:
            rec["command"] = self.command
        return rec


@dataclass
class RegressionConfig(StageConfig):
    """Deterministic regression decoder (a diagnostic baseline of what the streams carry)."""

    runner: ClassVar[str] = "training.regression:run_regression"
    out: str = option(None, "folder for the model and its card", required=True)
    steps: int = option(3000, "steps (one-cycle learning rate)", positive=True)
    batch_size: int = option(16, "images per step", positive=True)
    lr: float = option(5e-4, "peak learning rate", positive=True)
    hci_root: str = option("codec/weights/hci-64", "HCI rate-point folders", flag="--hci")
    num_tokens: int = option(8, "RSRT tokens", positive=True)
    levels: tuple = option((8, 5, 5, 5), "FSQ levels", type=int)
    unquantized_steps: int = option(300, "first steps without FSQ rounding")
    caption_dropout: float = option(0.15, "fraction of images trained with the null caption")
    hci_dropout: float = option(0.2, "fraction of images trained without their HCI")
    threads: Optional[int] = option(None, THREADS, type=int, positive=True)
    tiny: bool = option(False, "tiny networks (tests)")
    size: int = option(64, "image side [px]", positive=True)
    captioner: Optional[str] = option(None, "SceneCaptioner folder for the training captions")


@dataclass
class JudgeConfig(StageConfig):
    """The scene judge (referee of semantic consistency)."""

    runner: ClassVar[str] = "training.judge:run_judge"
    out: str = option(None, "folder for the judge and its card", required=True)
    steps: int = option(3000, "steps (one-cycle learning rate)", positive=True)
    batch_size: int = option(32, "images per step", positive=True)
    lr: float = option(2e-3, "peak learning rate", positive=True)
    train_scenes: int = option(20000, "rendered training scenes", positive=True)
    train_seed: int = option(seeds.JUDGE_TRAIN, "data set seed of the training scenes")
    eval_seed: int = option(seeds.JUDGE_EVAL, "data set seed of the evaluation scenes")
    eval_scenes: int = option(2000, "evaluation scenes", positive=True)
    workers: int = option(2, "processes rendering scenes", positive=True)
    seed: int = option(0, "seed of the weights and batches")


@dataclass
class CaptionerConfig(StageConfig):
    """The scene captioner (caption stream for scenes)."""

    runner: ClassVar[str] = "training.captioner:run_captioner"
    out: str = option(None, "folder for the captioner and its card", required=True)
    steps: int = option(3000, "steps (one-cycle learning rate)", positive=True)
    batch_size: int = option(32, "images per step", positive=True)
    lr: float = option(2e-3, "peak learning rate", positive=True)
    train_scenes: int = option(16000, "rendered training scenes", positive=True)
    size: int = option(64, "image side [px]", positive=True)
    seed: int = option(1, "seed of the weights and batches")
    eval_scenes: int = option(1000, "evaluation scenes", positive=True)
    threads: Optional[int] = option(None, THREADS, type=int, positive=True)


@dataclass
class HCIConfig(StageConfig):
    """One fixed-rate HCI point on scenes (and photo tiles), resumable."""

    runner: ClassVar[str] = "training.hci:run_hci"
    out: str = option(None, "folder for config.json/model.safetensors/card", required=True)
    lmbda: float = option(None, "rate–distortion trade-off", type=float, required=True,
                          positive=True)
    steps: int = option(3000, "step count to reach", positive=True)
    arch: str = option("factorized", "CompressAI model family",
                       choices=("factorized", "hyperprior"))
    N: int = option(48, "channels of the transforms", positive=True)
    M: int = option(16, "latent channels", positive=True)
    depth: int = option(4, "down-sampling stages", positive=True)
    size: int = option(64, "working size [px]", positive=True)
    batch_size: int = option(16, "images per step", positive=True)
    lr: float = option(1e-3, "learning rate (×0.1 for the last 15 %)", positive=True)
    n_train: int = option(16000, "training scenes", positive=True)
    n_eval: int = option(500, "evaluation scenes", positive=True)
    run_dir: Optional[str] = option(None, "checkpoint folder (default runs/hci/<name>)")
    threads: int = option(1, "torch threads", positive=True)
    seed: int = option(0, "seed of the weights and batches")
    checkpoint_every: int = option(250, "steps between checkpoints", positive=True)
    init_from: Optional[str] = option(None, "checkpoint.pt of another run to start from "
                                            "(model, optimizers, step)")
    photos: Optional[str] = option(None, "photo set (sdgic data photos) to mix into training "
                                         "and evaluation")
    photo_fraction: float = option(0.25, "share of each batch taken from the photo train tiles")

    def check(self) -> "HCIConfig":
        if not 0.0 <= self.photo_fraction <= 1.0:
            raise ValueError(f"photo_fraction must be in [0, 1]; got {self.photo_fraction}")
        return self


@dataclass
class HCIPhotosConfig(StageConfig):
    """The variable-rate photo HCI at native scale (resumable; --export writes the rate
    points)."""

    runner: ClassVar[str] = "training.hci_photos:run_hci_photos"
    run: str = option(None, "checkpoint folder (resumes when it has one)", required=True)
    photos: str = option(None, "a `sdgic data photos` folder", required=True)
    steps: int = option(40000, "step count to reach (×0.1 learning rate for the last 10 %)",
                        positive=True)
    N: int = option(96, "channels of the transforms", positive=True)
    M: int = option(96, "latent channels", positive=True)
    Nz: int = option(32, "hyper-latent channels", positive=True)
    depth: int = option(5, "down-sampling stages", positive=True)
    lmbdas: tuple = option(DEFAULT_LMBDAS, "one rate–distortion trade-off per rate point, "
                                           "increasing", type=float)
    crop: int = option(192, "crop side [px]", positive=True)
    batch_size: int = option(8, "crops per step", positive=True)
    lr: float = option(3e-4, "learning rate (200-step warm-up on fresh optimizers)",
                       positive=True)
    min_side: int = option(512, "shortest long side of the scaled photo [px]", positive=True)
    max_side: int = option(1536, "longest long side of the scaled photo [px]", positive=True)
    jitter: float = option(0.1, "colour jitter (brightness, contrast, saturation ±)")
    seed: int = option(0, "seed of the weights and batches")
    threads: int = option(1, "torch threads", positive=True)
    checkpoint_every: int = option(200, "steps between checkpoints", positive=True)
    device: str = option("cpu", "torch device (cuda on a lent GPU)")
    max_minutes: Optional[float] = option(None, MAX_MINUTES, type=float, positive=True)
    init: Optional[str] = option(None, "an exported HCI folder to start from when --run has no "
                                       "checkpoint (its step count carries on; optimizers "
                                       "start fresh)", metavar="FOLDER")
    export: Optional[str] = option(None, "write the rate points instead of training",
                                   metavar="FOLDER")
    export_rates: Optional[tuple] = option(None, "rate values to export (default: each "
                                                 "trained point)", type=float, many=True)
    export_names: Optional[tuple] = option(None, "their folder names", type=str, many=True)
    command: Optional[str] = option(None, "the command line that started the run", cli=False)

    def check(self) -> "HCIPhotosConfig":
        if list(self.lmbdas) != sorted(self.lmbdas) or min(self.lmbdas) <= 0:
            raise ValueError(f"--lmbdas {list(self.lmbdas)} must be positive and increasing")
        return self


STAGE_CONFIGS: dict[str, type[StageConfig]] = {
    "judge": JudgeConfig, "captioner": CaptionerConfig, "regression": RegressionConfig,
    "prior": PriorConfig, "dpcd": DPCDConfig, "hci": HCIConfig, "hci-photos": HCIPhotosConfig,
}


def run_stage(cfg: StageConfig):
    """Run the stage ``cfg`` configures (its ``runner``); returns what the runner returns."""
    module, _, name = type(cfg).runner.partition(":")
    return getattr(importlib.import_module(module), name)(cfg.check())
