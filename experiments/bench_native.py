"""A native-size preset on whole photos: decode time, memory, fidelity and a seam check.

    python -m experiments.bench_native [--preset photos] [--images data/photos/test/512]
                                       [--n 2] [--rate high] [--steps 20] [--threads 2]
                                       [--out results/dpcd/native]

For each photo (at its own size): encode (timed), decode with the preset's tiled sampler
(timed, one image at a time), PSNR of the HCI alone and of SDGIC against the source, bpp with
every stream counted, and the **seam ratio**: the mean absolute step between neighbouring
pixels across the tile edges (:meth:`codec.dpcd.tiles.TileGrid.seams`, in image pixels)
divided by the same away from them, for the decoded image and for the source (no seams: its
ratio is the reference; a visible seam pushes the decoded ratio above it). Perceptual
measures beside PSNR (``--no-inception`` skips them): the Inception similarity of each whole
image to its source (cosine of Inception-v3 pool features, :mod:`benchmark.metrics`), and FID
on non-overlapping ``--patch`` px patches of all photos against the source's patches (the
peers' patch FID; N patches is reported with it: with fewer patches than 2048 FID is biased
upwards, so compare values of equal N only). Writes ``bench_native.json`` (with the command,
commit, CPU, torch threads and the precision used) and ``grid.png`` (rows: source | HCI |
SDGIC).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def seam_ratio(img: np.ndarray, rows: list[int], cols: list[int]) -> float:
    """Mean |step| across the given pixel rows/columns over the mean |step| elsewhere."""
    x = img.astype(np.float64).mean(-1)
    dx = np.abs(np.diff(x, axis=1))          # dx[:, c - 1]: between columns c - 1 and c
    dy = np.abs(np.diff(x, axis=0))
    cs = [c - 1 for c in cols if 0 < c < x.shape[1]]
    rs = [r - 1 for r in rows if 0 < r < x.shape[0]]
    at = np.concatenate([dx[:, cs].ravel(), dy[rs, :].ravel()])
    mask_x = np.ones(dx.shape[1], bool)
    mask_x[cs] = False
    mask_y = np.ones(dy.shape[0], bool)
    mask_y[rs] = False
    away = np.concatenate([dx[:, mask_x].ravel(), dy[mask_y, :].ravel()])
    return float(at.mean() / max(away.mean(), 1e-9)) if at.size else float("nan")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-12)))


def patches(img: np.ndarray, size: int) -> np.ndarray:
    """Non-overlapping ``size`` px patches of an (H, W, 3) image: (N, size, size, 3)."""
    h, w = (img.shape[0] // size) * size, (img.shape[1] // size) * size
    x = img[:h, :w].reshape(h // size, size, w // size, size, 3).swapaxes(1, 2)
    return x.reshape(-1, size, size, 3)


def perceptual(decoded: dict, sources: list, patch: int) -> dict:
    """Inception similarity per image and patch FID per method: ``decoded`` maps a method
    name to its images (in the order of ``sources``)."""
    from benchmark.metrics import fid_from_features, inception_features

    inc = inception_features()
    ref = np.concatenate([patches(x, patch) for x in sources])
    ref_feats = inc(ref) if len(ref) >= 2 else None
    out = {"patch_px": patch, "patches": int(len(ref))}
    for name, imgs in decoded.items():
        sims = [float(inc.similarity(x[None], y[None])[0]) for x, y in zip(sources, imgs)]
        fid = None             # (photos smaller than two patches in all)
        if len(ref) >= 2:
            fid = fid_from_features(ref_feats, inc(np.concatenate([patches(y, patch)
                                                                   for y in imgs])))
        out[name] = {"inception_similarity": sims,
                     "inception_similarity_mean": float(np.mean(sims)), "patch_fid": fid}
    return out


def main(argv=None):
    from codec.provenance import command_line, git_commit
    from codec.sdgic import SDGIC

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="photos")
    p.add_argument("--images", default="data/photos/test/512")
    p.add_argument("--n", type=int, default=2, help="photos (sorted by name)")
    p.add_argument("--rate", default=None, help="HCI rate point (default: the preset's)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precision", choices=("fp32", "bf16"), default=None)
    p.add_argument("--out", default="results/dpcd/native")
    p.add_argument("--patch", type=int, default=64, help="patch side [px] of the patch FID")
    p.add_argument("--no-inception", action="store_true",
                   help="skip Inception similarity and patch FID")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    codec = SDGIC.from_pretrained(a.preset, rate=a.rate)
    if codec.size != "native":
        raise SystemExit(f"preset {a.preset!r} is not a native-size preset (size = "
                         f"{codec.size!r})")
    files = sorted(f for f in Path(a.images).iterdir()
                   if f.suffix.lower() in (".png", ".jpg", ".jpeg"))[:a.n]
    if not files:
        raise SystemExit(f"no images in {a.images}")
    f = codec.space.factor
    rows, tiles, sources, hcis, outs = [], [], [], [], []
    for path in files:
        img = np.array(Image.open(path).convert("RGB"))
        t0 = time.perf_counter()
        enc = codec.encode(img)
        t_enc = time.perf_counter() - t0
        hci = codec.streams_of(enc)["hci"]
        t0 = time.perf_counter()
        out = codec.decode(enc, steps=a.steps, precision=a.precision)
        t_dec = time.perf_counter() - t0
        grid = codec.tile_grid(*img.shape[:2])
        sr, sc = grid.seams()
        sr, sc = [r * f for r in sr], [c * f for c in sc]
        rows.append(dict(image=path.name, height=img.shape[0], width=img.shape[1],
                         tiles=len(grid), bpp=enc.bpp(),
                         bits={s: enc.stream_bits(s) for s in ("caption", "hci", "rsrt")},
                         encode_s=t_enc, decode_s=t_dec, psnr_hci_db=psnr(img, hci),
                         psnr_sdgic_db=psnr(img, out), seam_ratio_sdgic=seam_ratio(out, sr, sc),
                         seam_ratio_source=seam_ratio(img, sr, sc),
                         seam_ratio_hci=seam_ratio(hci, sr, sc)))
        print(json.dumps(rows[-1]), flush=True)
        tiles.append(np.concatenate([img, hci, out], 1))
        sources.append(img), hcis.append(hci), outs.append(out)
    out_dir = Path(a.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    w = max(t.shape[1] for t in tiles)
    Image.fromarray(np.concatenate([np.pad(t, ((0, 4), (0, w - t.shape[1]), (0, 0)))
                                    for t in tiles])).save(out_dir / "grid.png")
    summary = dict(
        command=command_line("experiments.bench_native", argv), commit=git_commit(),
        preset=a.preset, rate=codec.rate, steps=a.steps or codec.steps,
        precision=a.precision or codec.precision, tile=codec.resolution,
        tile_overlap=codec.tile_overlap, threads=a.threads, cpu=platform.processor() or
        platform.machine(), peak_rss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        / 2 ** 20, card_status=codec.card.get("status"), images=rows,
        mean={k: float(np.mean([r[k] for r in rows])) for k in
              ("bpp", "encode_s", "decode_s", "psnr_hci_db", "psnr_sdgic_db",
               "seam_ratio_sdgic", "seam_ratio_source")})
    if not a.no_inception:
        summary["perceptual"] = perceptual({"hci": hcis, "sdgic": outs}, sources, a.patch)
        for k in ("hci", "sdgic"):
            summary["mean"][f"inception_similarity_{k}"] = \
                summary["perceptual"][k]["inception_similarity_mean"]
            summary["mean"][f"patch_fid_{k}"] = summary["perceptual"][k]["patch_fid"]
    (out_dir / "bench_native.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary["mean"]))


if __name__ == "__main__":
    main()
