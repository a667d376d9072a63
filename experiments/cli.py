"""The ``sdgic`` command line.

Subcommands: ``data scenes``, ``data photos``, ``train judge``, ``train prior``,
``train dpcd``, ``train captioner``, ``train regression``, ``encode``, ``inspect``, ``decode``, ``eval``,
``demo``, ``sim``, ``sweep``, ``plot``. Errors the user can fix print one line and exit with
status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _positive(kind):
    def parse(v):
        x = kind(v)
        if x <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {v}")
        return x
    return parse


def interval_arg(v):
    """argparse type for ``LO:HI`` guidance intervals."""
    from codec.preset import parse_guidance_interval

    try:
        return parse_guidance_interval(v)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def cmd_data_scenes(a):
    from benchmark.scene_dataset import write_scene_folder

    if a.size < 16:
        raise ValueError(f"--size {a.size} is too small; use 16 or more pixels")
    out = write_scene_folder(a.out, a.n, seed=a.seed, size=a.size, workers=a.workers)
    print(f"wrote {a.n} scenes ({a.size}×{a.size}) and scenes.jsonl to {out}")


def cmd_data_photos(a):
    from benchmark.photos import build_photo_set

    m = build_photo_set(a.out, workdir=a.workdir)
    print(f"wrote {m['tiles']['train']} train and {m['tiles']['val']} val tiles from "
          f"{len(m['photos'])} photographs to {a.out} (manifest.json lists them); whole "
          f"photos: {m['full']['counts']} (full_manifest.json)")


def cmd_data_native_pairs(a):
    from training.native_pairs import build_native_pairs

    m = build_native_pairs(a.photos, a.hci, a.out, sides=a.sides)
    print(f"wrote {len(m['items'])} photo sizes with their HCI at {len(m['points'])} rate "
          f"points to {a.out} (native_pairs.json lists them)")


def cmd_train(a):
    import shlex

    from training.stages import STAGE_CONFIGS, run_stage

    cls = STAGE_CONFIGS[a.what]
    extra = {"command": shlex.join(["sdgic", *a.argv])} if "command" in cls.__dataclass_fields__ \
        else {}
    out = run_stage(cls.from_args(a, **extra))
    if isinstance(out, dict):
        print(json.dumps(out.get("metrics", out.get("eval", {})), indent=2))
    elif out is not None:
        print(f"checkpoint: {out}")


def _caption_for(a, image_path: Path, rgb, detail: str = "full") -> tuple[str | None, str]:
    """The caption to send and where it came from: --caption, --no-caption, IMAGE.txt, or
    the --captioner (default: the shipped scene captioner, writing at ``detail``, the
    preset's ``caption_detail``)."""
    from benchmark.captioner import SceneCaptioner, make_captioner, sidecar_caption

    if a.caption is not None:
        return a.caption, "--caption"
    if a.no_caption:
        return None, "--no-caption"
    side = sidecar_caption(image_path)
    if side is not None:
        return side, f"sidecar {image_path.with_suffix('.txt').name}"
    captioner = make_captioner(a.captioner)
    if captioner is None:
        return None, "--captioner none"
    if isinstance(captioner, SceneCaptioner):
        return captioner(rgb, detail=detail), f"captioner {a.captioner} (detail {detail})"
    return captioner(rgb), f"captioner {a.captioner}"


def _describe(enc, coder=None) -> list[str]:
    """Human-readable lines about an EncodedImage: streams, bits, bpp, caption, tokens."""
    from codec.streams.caption_coder import CaptionCoder

    px = enc.height * enc.width
    lines = [f"preset {enc.preset}, image {enc.width}×{enc.height} ({px} px), container "
             f"{len(enc.to_bytes())} bytes"]
    for name in ("caption", "hci", "rsrt"):
        if not enc.has(name):
            lines.append(f"  {name:8s} absent")
            continue
        bits = enc.stream_bits(name)
        extra = ""
        if name == "caption":
            try:
                extra = f"  \"{(coder or CaptionCoder.load()).decode(enc.caption)}\""
            except ValueError as e:
                extra = f"  (undecodable: {e})"
        if name == "hci" and enc.hci_slices is not None:
            gone = [i for i, v in enumerate(enc.hci_slices) if v is None]
            extra = f"  {len(enc.hci_slices)} slices" + (f", lost {gone}" if gone else "")
        if name == "rsrt":
            lost = enc.lost_tokens()
            extra = (f"  {len(enc.rsrt_tokens)} tokens × {enc.rsrt_bits} bits"
                     + (f", lost {lost}" if lost else ""))
        lines.append(f"  {name:8s} {bits:5d} bits  {bits / px:.5f} bpp{extra}")
    lines.append(f"  {'total':8s} {enc.total_bits():5d} bits  {enc.bpp():.5f} bpp (payload; "
                 "container framing not counted)")
    return lines


def cmd_encode(a):
    from codec.image_io import load_rgb
    from codec.sdgic import SDGIC

    path = Path(a.image)
    rgb = load_rgb(path)
    if min(rgb.shape[:2]) < 2:
        raise ValueError(f"{path}: image is {rgb.shape[1]}×{rgb.shape[0]} pixels; sdgic "
                         "encode needs at least 2×2")
    codec = SDGIC.from_pretrained(a.preset, rate=a.rate)
    if codec.caption_stream:
        caption, source = _caption_for(a, path, rgb, codec.caption_detail)
    elif a.caption is not None:
        raise ValueError(f"preset {codec.preset!r} was trained without captions "
                         "(caption_stream: false in its preset.json): drop --caption")
    else:
        caption, source = None, f"nowhere: preset {codec.preset} sends no caption stream"
    enc = codec.encode(rgb, caption=caption, num_tokens=a.tokens)
    out = enc.save(a.output or path.with_suffix(".sdg"))
    print(f"wrote {out} (caption from {source})")
    print("\n".join(_describe(enc, codec.caption_coder)))


def cmd_inspect(a):
    from codec.container import EncodedImage

    print("\n".join(_describe(EncodedImage.load(a.file))))


def cmd_decode(a):
    import dataclasses

    from PIL import Image

    from codec.container import EncodedImage
    from codec.sdgic import SDGIC

    enc = EncodedImage.load(a.file)
    drop = [s.strip() for s in a.drop.split(",") if s.strip()] if a.drop else []
    enc = enc.without(*drop)
    if a.lose_tokens:
        enc = enc.with_lost_tokens([int(i) for i in a.lose_tokens.split(",")])
    if a.lose_slices:
        if enc.hci_slices is None:
            raise ValueError(f"{a.file} carries no HCI slices (--lose-slices needs a sliced "
                             "HCI, e.g. from --preset photos)")
        gone = {int(i) for i in a.lose_slices.split(",")}
        bad = sorted(gone - set(range(len(enc.hci_slices))))
        if bad:
            raise ValueError(f"--lose-slices {bad}: the HCI has slices 0..{len(enc.hci_slices) - 1}")
        enc = dataclasses.replace(enc, hci_slices=tuple(
            None if i in gone else v for i, v in enumerate(enc.hci_slices)))
    codec = SDGIC.from_pretrained(a.preset or enc.preset.partition(":")[0])
    img = codec.decode(enc, seed=a.seed, steps=a.steps, guidance_scale=a.guidance,
                       precision=a.precision, guidance_interval=a.guidance_interval,
                       strength=a.strength)
    out = Path(a.output or Path(a.file).with_suffix(".png"))
    Image.fromarray(img).save(out)
    used = [s for s in ("caption", "hci", "rsrt") if enc.has(s)]
    print(f"wrote {out} ({img.shape[1]}×{img.shape[0]}) from streams {used or 'none'}")


def cmd_eval(a):
    from benchmark.evaluate import evaluate_folders

    df, summary, notes = evaluate_folders(a.ref, a.rec, streams=a.streams, judge_path=a.judge,
                                          inception=not a.no_inception)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "per_image.csv", index=False)
    summary.to_csv(out / "summary.csv")
    for n in notes:
        print(f"note: {n}")
    print(summary.to_string(float_format=lambda v: f"{v:.4f}"))
    print(f"wrote {out / 'per_image.csv'} and {out / 'summary.csv'}")


def cmd_subset_table(a):
    import shlex

    import numpy as np

    from benchmark.codec_eval import held_out
    from benchmark.subset_table import TABLE_FILE, measure_subset_table
    from codec.provenance import git_commit
    from codec.sdgic import SDGIC

    codec = SDGIC.from_pretrained(a.preset)
    images, scenes, captions, _, desc = held_out(codec, a.n, photos=a.photos)
    metric = a.metric or ("consistency" if scenes is not None else "psnr")
    if metric == "consistency":
        if scenes is None:
            raise ValueError("--metric consistency needs scenes (the judge scores scenes); "
                             "photos take psnr or inception_similarity")
        from benchmark.judge import SceneJudge

        judge = SceneJudge()
        score = lambda recs: [s["consistency"] for s in judge.consistency(recs, scenes)]  # noqa: E731
    elif metric == "psnr":
        from benchmark.metrics import psnr

        score = lambda recs: psnr(images, recs)  # noqa: E731
    else:
        from benchmark.metrics import inception_features

        feats = inception_features()
        ref = feats(images)

        def score(recs):
            rec = feats(recs)
            return (ref * rec).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(rec, axis=1))
    table = measure_subset_table(
        codec, images, captions, score, rates=a.rates, token_counts=a.tokens, steps=a.steps,
        batch=a.batch, metric=metric,
        provenance={"command": shlex.join(["sdgic", *a.argv]), "commit": git_commit(),
                    "data": desc})
    out = Path(a.out) if a.out else codec.folder / TABLE_FILE
    table.save(out)
    for (rate, k), p in table.points.items():
        print(f"{rate} k={k}: " + "  ".join(f"{n} {v:.3f}" for n, v in p["value"].items()))
    print(f"wrote {out}")


def cmd_demo(a):
    from experiments.demo import run_demo

    import shlex

    run_demo(a.out, n=a.n, command=shlex.join(["sdgic", *a.argv]))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sdgic", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="make data sets").add_subparsers(dest="what", required=True)
    s = data.add_parser("scenes", help="procedural scenes: PNGs + scenes.jsonl")
    s.add_argument("--n", type=_positive(int), default=100)
    s.add_argument("--size", type=int, default=128)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--workers", type=_positive(int), default=1)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_data_scenes)
    s = data.add_parser("photos", help="128² crops of the Debian wallpaper photographs, "
                          "whole photos (train/val) and the full-size test set")
    s.add_argument("--out", required=True)
    s.add_argument("--workdir", help="keep downloaded .deb files here (default: a temp folder)")
    s.set_defaults(func=cmd_data_photos)

    s = data.add_parser("native-pairs", help="whole photos beside their photo-HCI "
                        "reconstructions (native-scale DPCD training; resumable)")
    s.add_argument("--photos", required=True, help="a `sdgic data photos` folder")
    s.add_argument("--hci", default="codec/weights/hci-photos", help="photo HCI rate points")
    s.add_argument("--sides", type=_positive(int), nargs="+", default=[512, 768],
                   help="long sides [px] each photo is stored at")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_data_native_pairs)

    train = sub.add_parser("train", help="train models (one stage each; every stage "
                                         "resumes or is short)").add_subparsers(
        dest="what", required=True)
    from training.stages import STAGE_CONFIGS

    for stage, cls in STAGE_CONFIGS.items():
        s = train.add_parser(stage, help=cls.__doc__.split("\n\n")[0].replace("\n", " ")
                             .replace("    ", "").rstrip("."))
        cls.add_arguments(s)
        s.set_defaults(func=cmd_train)

    s = sub.add_parser("encode", help="image → .sdg (caption, HCI and RSRT streams)")
    s.add_argument("image", help="any image file Pillow reads (any size ≥ 2×2, any mode)")
    s.add_argument("-o", "--output", help="output .sdg (default: IMAGE.sdg)")
    s.add_argument("--preset", default="scenes-64", help="shipped preset name or folder")
    s.add_argument("--rate", help="HCI rate point of the preset (default: the preset's)")
    s.add_argument("--tokens", type=int, help="RSRT tokens to send (default: the preset's: all "
                                              "K unless its preset.json sets num_tokens; 0: none)")
    cap = s.add_mutually_exclusive_group()
    cap.add_argument("--caption", help="caption text to send (else IMAGE.txt, else captioner)")
    cap.add_argument("--no-caption", action="store_true", help="send no caption stream")
    s.add_argument("--captioner", default="scene", help="'scene' (shipped), 'none', or a "
                   "local folder (CaptionerNet or a transformers image-to-text model)")
    s.set_defaults(func=cmd_encode)
    s = sub.add_parser("inspect", help="streams, bits and bpp of a .sdg file")
    s.add_argument("file")
    s.set_defaults(func=cmd_inspect)
    s = sub.add_parser("decode", help=".sdg → image with DPCD, from whatever streams it holds")
    s.add_argument("file")
    s.add_argument("-o", "--output", help="output image (default: FILE.png)")
    s.add_argument("--steps", type=_positive(int), help="denoising steps (default: preset's)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--guidance", type=float, help="classifier-free guidance scale")
    s.add_argument("--guidance-interval", type=interval_arg, metavar="LO:HI",
                   help="guide only at timesteps t/T in [LO, HI] (default: the preset's)")
    s.add_argument("--precision", choices=("fp32", "bf16"),
                   help="decoder arithmetic (default: the preset's)")
    s.add_argument("--strength", type=float,
                   help="in (0, 1]: start from the HCI noised this far into the schedule "
                        "(default: the preset's; 1: pure noise)")
    s.add_argument("--drop", help="streams to drop before decoding, e.g. caption,rsrt")
    s.add_argument("--lose-tokens", help="RSRT token indices to mark lost, e.g. 0,3")
    s.add_argument("--lose-slices", help="HCI slice indices to mark lost, e.g. 1 (a sliced "
                                         "HCI: the tiles they reach are drawn without it)")
    s.add_argument("--preset", help="decoder preset (default: the one in the file)")
    s.set_defaults(func=cmd_decode)

    s = sub.add_parser("eval", help="metrics of reconstructions against references")
    s.add_argument("--ref", required=True, help="reference images (scenes.jsonl optional)")
    s.add_argument("--rec", required=True, help="reconstructions, same file stems")
    s.add_argument("--streams", help="folder of each image's compressed files NAME.* (for bpp)")
    s.add_argument("--judge", help="scene judge folder (default: the shipped one)")
    s.add_argument("--no-inception", action="store_true", help="skip Inception similarity/FID")
    s.add_argument("--out", default="eval", help="where per_image.csv and summary.csv go")
    s.set_defaults(func=cmd_eval)

    s = sub.add_parser("subset-table", help="what each received stream subset is worth (the "
                                            "semantic policy's table), measured")
    s.add_argument("--preset", required=True, help="SDGIC preset name or folder")
    s.add_argument("--n", type=_positive(int), default=64, help="held-out images")
    s.add_argument("--photos", help="a `sdgic data photos` folder (default: held-out scenes)")
    s.add_argument("--metric", choices=("consistency", "psnr", "inception_similarity"),
                   help="default: consistency for scenes, psnr for photos")
    s.add_argument("--rates", nargs="+", help="HCI rate points (default: all)")
    s.add_argument("--tokens", type=int, nargs="+", help="RSRT token counts (default: the "
                                                         "preset's)")
    s.add_argument("--steps", type=_positive(int), help="decoder steps (default: the preset's)")
    s.add_argument("--batch", type=_positive(int), default=16)
    s.add_argument("--out", help="JSON file (default: subset_table.json in the preset folder)")
    s.set_defaults(func=cmd_subset_table)

    s = sub.add_parser("demo", help="data-and-metrics demo: what a thumbnail or JPEG keeps")
    s.add_argument("--out", default="results/demo")
    s.add_argument("--n", type=_positive(int), default=48)
    s.set_defaults(func=cmd_demo)

    from experiments.sim_cli import add_sim_commands

    add_sim_commands(sub)   # sdgic sim / sweep / plot
    from experiments.calibrate_cli import add_calibrate_command

    add_calibrate_command(sub)
    return p


def _quiet_libraries() -> None:
    """Hide library deprecation chatter and weight-loading bars from command output."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*non-writable tensors.*")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _quiet_libraries()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, NotADirectoryError, RuntimeError, OSError) as e:
        if os.environ.get("SDGIC_DEBUG"):
            raise
        print(f"sdgic {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
