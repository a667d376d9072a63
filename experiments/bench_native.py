"""A native-size preset on whole photos: decode time, memory, fidelity and a seam check.

    python -m experiments.bench_native [--preset photos] [--images data/photos/test/512]
                                       [--n 2] [--rate high] [--steps 20] [--threads 2]
                                       [--without rsrt]
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
SDGIC). ``--without rsrt`` drops the tokens after encoding (decoded and counted as never sent).

**At equal bits** (``--no-equal-bits`` skips it), per photo, with every stream of SDGIC counted:
the HCI alone at the highest rate (variable-rate models take any rate between their points;
bisection) whose single stream does not exceed SDGIC's bits, and each classical codec (JPEG,
WebP, AVIF at ``--qualities``, native and after a bicubic downscale by each of ``--factors``,
upscaled back) at its highest-PSNR point within those bits, and the best of the three per
photo. Their PSNR, Inception similarity and patch FID sit beside SDGIC's in ``equal_bits``.
"""

from __future__ import annotations

import argparse
import dataclasses
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


CLASSICAL = ("jpeg", "webp", "avif")


def classical_at_bits(img: np.ndarray, max_bits: int, qualities, factors) -> dict:
    """Per classical codec, its highest-PSNR point with at most ``max_bits``: ``{codec:
    {"setting", "bits", "psnr_db", "image"}}`` (codecs with no point that small left out)."""
    from codec.classical import code_image

    out = {}
    for name in CLASSICAL:
        for f in factors:
            for q in sorted(qualities):           # bits grow with quality: stop past the cap
                data, rec = code_image(img, name, q, f)
                if 8 * len(data) > max_bits:
                    break
                db = psnr(img, rec)
                if name not in out or db > out[name]["psnr_db"]:
                    out[name] = dict(setting=f"{name} q{q} ↓{f:g}", bits=8 * len(data), psnr_db=db,
                                     image=rec)
    return out


def hci_at_bits(hci, img: np.ndarray, max_bits: int, lo: float, steps: int = 7):
    """The HCI (``codec.streams.hci.HCICodec`` of a variable-rate model, used privately: its
    rate is changed) at the highest rate whose stream has at most ``max_bits``, by bisection
    in ``[lo, n_rates - 1]``, or in ``[0, lo]`` when ``lo`` is already over (SDGIC's sliced
    stream can be smaller than one stream at its rate): ``(rate, bits, decoded)``, or None
    when even rate 0 is over."""
    def trial(r):
        hci.rate = hci.model.rate = r
        data = hci.encode(img)
        return (r, data) if 8 * len(data) <= max_bits else None

    top = float(hci.model.n_rates - 1)
    best = trial(float(lo))
    if best is not None:
        a, b = float(lo), top
        best = trial(top) or best
    else:
        a, b = 0.0, float(lo)
        best = trial(a)
        if best is None:
            return None
    if best[0] != b:
        for _ in range(steps):
            m = (a + b) / 2
            t = trial(m)
            if t is not None:
                a, best = m, t
            else:
                b = m
    hci.rate = hci.model.rate = best[0]
    return best[0], 8 * len(best[1]), hci.decode(best[1])


def equal_bits(codec, files, sources, outs, bits, qualities, factors) -> dict:
    """The HCI alone and the classical codecs at SDGIC's bits, per photo (see the module
    docstring): their images per method and a per-photo table."""
    import copy

    from codec.streams.hci import HCICodec

    base = codec.hci[codec.rate]
    hci = HCICodec(copy.deepcopy(base.model), base.working_size, base.fit, base.check_bits,
                   rate=base.rate)
    images = {"sdgic": outs}
    table = []
    for path, img, out, nbits in zip(files, sources, outs, bits):
        row = {"image": path.name, "sdgic_bits": nbits, "sdgic_psnr_db": psnr(img, out)}
        h = hci_at_bits(hci, img, nbits, base.rate)
        cls = classical_at_bits(img, nbits, qualities, factors)
        picks = {"hci": None if h is None else dict(setting=f"rate {h[0]:.3f}", bits=h[1],
                                                    psnr_db=psnr(img, h[2]), image=h[2])}
        picks.update({name: cls.get(name) for name in CLASSICAL})
        # (None when no classical point fits the bits: every method keeps one entry per photo)
        picks["best_classical"] = max(cls.values(), key=lambda c: c["psnr_db"]) if cls else None
        for name, c in picks.items():
            images.setdefault(name, []).append(None if c is None else c["image"])
            row.update({f"{name}_{k}": (None if c is None else c[k])
                        for k in ("setting", "bits", "psnr_db")})
        table.append(row)
        print(json.dumps({k: v for k, v in row.items() if not k.endswith("setting")}),
              flush=True)
    return images, table


def main(argv=None):
    from codec.provenance import command_line, git_commit
    from codec.sdgic import SDGIC

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="photos")
    p.add_argument("--images", default="data/photos/test/512")
    p.add_argument("--n", type=int, default=2, help="photos (sorted by name)")
    p.add_argument("--rate", default=None, help="HCI rate point (default: the preset's)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--strength", type=float, default=None,
                   help="start from the HCI noised this far into the schedule (default: the "
                        "preset's; 1: pure noise)")
    p.add_argument("--without", nargs="+", default=[], choices=("caption", "rsrt"),
                   help="streams not sent: dropped after encoding, not counted in the bits")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precision", choices=("fp32", "bf16"), default=None)
    p.add_argument("--tile-overlap", type=int, default=None,
                   help="override the preset's tile overlap [px] (encode and decode)")
    p.add_argument("--out", default="results/dpcd/native")
    p.add_argument("--patch", type=int, default=64, help="patch side [px] of the patch FID")
    p.add_argument("--no-inception", action="store_true",
                   help="skip Inception similarity and patch FID")
    p.add_argument("--no-equal-bits", action="store_true",
                   help="skip the HCI alone and the classical codecs at SDGIC's bits")
    p.add_argument("--qualities", type=int, nargs="+", default=[0, 2, 5, 10, 15, 25, 35, 50],
                   help="classical qualities tried at equal bits")
    p.add_argument("--factors", type=float, nargs="+", default=[1, 2, 3, 4, 6, 8],
                   help="classical downscale factors tried at equal bits")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    codec = SDGIC.from_pretrained(a.preset, rate=a.rate)
    if a.tile_overlap is not None:
        codec = dataclasses.replace(codec, tile_overlap=a.tile_overlap)
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
        enc = enc.without(*a.without)
        hci = codec.streams_of(enc)["hci"]
        t0 = time.perf_counter()
        out = codec.decode(enc, steps=a.steps, precision=a.precision, strength=a.strength)
        t_dec = time.perf_counter() - t0
        grid = codec.tile_grid(*img.shape[:2])
        sr, sc = grid.seams()
        sr, sc = [r * f for r in sr], [c * f for c in sc]
        rows.append(dict(image=path.name, height=img.shape[0], width=img.shape[1],
                         tiles=len(grid), bpp=enc.bpp(), bits_total=enc.total_bits(),
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
        strength=a.strength or codec.decode_settings.strength, without=a.without,
        precision=a.precision or codec.precision, tile=codec.resolution,
        tile_overlap=codec.tile_overlap, threads=a.threads, cpu=platform.processor() or
        platform.machine(), peak_rss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        / 2 ** 20, card_status=codec.card.get("status"), images=rows,
        mean={k: float(np.mean([r[k] for r in rows])) for k in
              ("bpp", "encode_s", "decode_s", "psnr_hci_db", "psnr_sdgic_db",
               "seam_ratio_sdgic", "seam_ratio_source")})
    decoded = {"hci": hcis, "sdgic": outs}
    if not a.no_equal_bits:
        images, table = equal_bits(codec, files, sources, outs, [r["bits_total"] for r in rows],
                                   a.qualities, a.factors)
        summary["equal_bits"] = {"qualities": a.qualities, "factors": a.factors,
                                 "photos": table, "mean_psnr_db": {}}
        for name, imgs in images.items():
            if name == "sdgic" or any(x is None for x in imgs):
                continue        # (a method with no point within some photo's bits: no mean)
            decoded[f"{name}_at_equal_bits"] = imgs
            summary["equal_bits"]["mean_psnr_db"][name] = float(np.mean(
                [r[f"{name}_psnr_db"] for r in table]))
    if not a.no_inception:
        summary["perceptual"] = perceptual(decoded, sources, a.patch)
        for k in decoded:
            summary["mean"][f"inception_similarity_{k}"] = \
                summary["perceptual"][k]["inception_similarity_mean"]
            summary["mean"][f"patch_fid_{k}"] = summary["perceptual"][k]["patch_fid"]
    (out_dir / "bench_native.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary["mean"]))


if __name__ == "__main__":
    main()
