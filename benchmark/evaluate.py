"""Compare a folder of reconstructions with a folder of references (``sdgic eval``).

Images are paired by file stem (``a.png`` ↔ ``a.webp`` is fine). Reconstructions of another
size are resized to the reference size before the full-reference metrics. Optional inputs:

- ``scenes.jsonl`` in the reference folder (made by ``sdgic data scenes``): scene semantic
  consistency by the judge, overall and per attribute;
- captions: ``NAME.txt`` beside a reference and a reconstruction (or the reference's
  ``scenes.jsonl`` caption): caption similarity (MiniLM cosine);
- ``streams``: a folder with each image's compressed file(s) ``NAME.*``: bpp from their bytes.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from benchmark.metrics import (OptionalIQA, bpp, fid_from_features, inception_features, ms_ssim,
                               psnr, resize_to)
from benchmark.stats import t_quantile
from codec.image_io import ImageFolder, load_rgb

# Inception features of reference files, keyed by (path, mtime, size): a sweep that scores
# many reconstructions of the same references extracts the reference features once.
_REF_FEATURES: dict[tuple, np.ndarray] = {}


def _cached_features(feats, paths: list[Path], images: list[np.ndarray], same_size: bool) -> np.ndarray:
    keys = [(str(p.resolve()), p.stat().st_mtime_ns, p.stat().st_size) for p in paths]
    todo = [i for i, k in enumerate(keys) if k not in _REF_FEATURES]
    if todo:
        new = feats(np.stack([images[i] for i in todo])) if same_size else \
            np.concatenate([feats(images[i]) for i in todo])
        for i, f in zip(todo, new):
            _REF_FEATURES[keys[i]] = f
    return np.stack([_REF_FEATURES[k] for k in keys])


def _captions(folder: Path, stems: list[str], scene_captions: dict[str, str]) -> list[str | None]:
    out = []
    for s in stems:
        txt = folder / f"{s}.txt"
        out.append(txt.read_text().strip() if txt.is_file() else scene_captions.get(s))
    return out


def evaluate_folders(ref: str | Path, rec: str | Path, streams: str | Path | None = None,
                     judge_path: str | Path | None = None, inception: bool = True,
                     progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Per-image metrics, a one-row-per-metric summary, and notes on what was skipped."""
    ref, rec = Path(ref), Path(rec)
    notes: list[str] = []
    ref_set = ImageFolder(ref)
    rec_set = ImageFolder(rec, skip_unreadable=True)
    for p, why in rec_set.unreadable:
        notes.append(f"skipped {why}")
    rec_by_stem = {p.stem: p for p in rec_set.paths}
    pairs = [(p, rec_by_stem[p.stem]) for p in ref_set.paths if p.stem in rec_by_stem]
    missing = [p.name for p in ref_set.paths if p.stem not in rec_by_stem]
    if missing:
        notes.append(f"{len(missing)} references have no reconstruction (e.g. {missing[0]})")
    if not pairs:
        raise FileNotFoundError(f"no image in {rec} shares a file name (stem) with {ref}")
    stems = [a.stem for a, _ in pairs]
    rows = {s: {"name": s} for s in stems}
    refs, recs = [], []
    for a, b in tqdm(pairs, desc="read images", disable=not progress):
        x, y = load_rgb(a), load_rgb(b)
        h, w = x.shape[:2]
        yt = resize_to(y, h, w)
        refs.append(x)
        recs.append((yt[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))
        rows[a.stem].update(height=h, width=w, psnr=float(psnr(x, yt)[0]),
                            ms_ssim=float(ms_ssim(x, yt)[0]))
        if streams is not None:
            files = [f for f in Path(streams).glob(f"{a.stem}.*") if f.is_file()]
            if files:
                rows[a.stem]["bpp"] = bpp(sum(f.stat().st_size for f in files), h, w)
    same_size = len({r.shape for r in refs}) == 1
    scene_caps: dict[str, str] = {}
    if (ref / "scenes.jsonl").is_file():
        from benchmark.judge import SceneJudge
        from benchmark.scene_dataset import read_scene_folder

        paths, scenes = read_scene_folder(ref)
        by_stem = {p.stem: sc for p, sc in zip(paths, scenes)}
        scene_caps = {k: sc.caption for k, sc in by_stem.items()}
        try:
            judge = SceneJudge(judge_path)
            known = [s for s in stems if s in by_stem]
            # the judge resizes any input to its own size, so images go one by one when
            # their sizes differ
            groups = [known] if same_size else [[s] for s in known]
            for group in groups:
                scores = judge.consistency(np.stack([recs[stems.index(s)] for s in group]),
                                           [by_stem[s] for s in group])
                for s, sc in zip(group, scores):
                    rows[s].update({k if k == "consistency" else f"judge_{k}": v
                                    for k, v in sc.items()})
        except FileNotFoundError as e:
            notes.append(f"semantic consistency skipped: {e}")
    ref_caps = _captions(ref, stems, scene_caps)
    rec_caps = _captions(rec, stems, {})
    have = [i for i, (a, b) in enumerate(zip(ref_caps, rec_caps)) if a is not None and b is not None]
    if have:
        from codec.text_encoder import default_text_encoder

        sims = default_text_encoder().similarity([ref_caps[i] for i in have],
                                                 [rec_caps[i] for i in have])
        for i, v in zip(have, sims.tolist()):
            rows[stems[i]]["caption_similarity"] = v
    else:
        notes.append("caption similarity skipped: no NAME.txt captions beside the reconstructions")
    fid = None
    if inception:
        feats = inception_features()
        fa = _cached_features(feats, [a for a, _ in pairs], refs, same_size)
        fb = feats(np.stack(recs)) if same_size else np.concatenate([feats(r) for r in recs])
        cos = (fa * fb).sum(1) / (np.linalg.norm(fa, axis=1) * np.linalg.norm(fb, axis=1) + 1e-12)
        for s, v in zip(stems, cos):
            rows[s]["inception_similarity"] = float(v)
        if len(stems) >= 2:
            fid = fid_from_features(fa, fb)
            if len(stems) < 2048:
                notes.append(f"FID from {len(stems)} images (< 2048 features): biased upwards, "
                             "compare only at equal N")
    iqa = OptionalIQA()
    if iqa.available:
        for i, s in enumerate(stems):
            for k, v in iqa(refs[i], recs[i]).items():
                rows[s][k] = float(v[0])
    notes.append(f"LPIPS/DISTS/AFINE: {iqa.reason}" if iqa.reason else "")
    df = pd.DataFrame(list(rows.values()))
    summary = df.drop(columns=["name", "height", "width"]).agg(["mean", "std", "count"]).T
    summary["ci95"] = t_quantile(summary["count"].to_numpy()) * summary["std"] \
        / np.sqrt(summary["count"].clip(lower=1))
    if fid is not None:
        summary.loc["fid"] = [fid, math.nan, len(stems), math.nan]
    return df, summary, [n for n in notes if n]


def score_images(refs: np.ndarray, recs: np.ndarray, scenes: list | None = None,
                 judge=None, inception: bool = True, captioner=None) -> tuple[pd.DataFrame, dict]:
    """Per-image metrics of in-memory reconstructions (same-size uint8 (N, H, W, 3) arrays).

    ``scenes``: ground truth for judge consistency (``judge``: a ``SceneJudge``, default the
    shipped one). ``captioner``: captions the reconstructions for caption similarity against
    the scenes' captions. Returns the per-image frame and set-level numbers (``fid``).
    """
    refs, recs = np.asarray(refs), np.asarray(recs)
    if refs.shape != recs.shape or refs.ndim != 4:
        raise ValueError(f"refs {refs.shape} and recs {recs.shape} must both be (N, H, W, 3)")
    df = pd.DataFrame({"psnr": psnr(refs, recs), "ms_ssim": ms_ssim(refs, recs)})
    extra: dict = {}
    if scenes is not None:
        from benchmark.judge import SceneJudge

        judge = judge or SceneJudge()
        scores = judge.consistency(recs, scenes)
        for k in scores[0]:
            df[k if k == "consistency" else f"judge_{k}"] = [s[k] for s in scores]
        if captioner is not None:
            from codec.text_encoder import default_text_encoder

            # similarity of full descriptions, whatever detail the sender's captions have
            rec_caps = (captioner(recs, detail="full") if hasattr(captioner, "detail")
                        else captioner(recs))
            df["caption_similarity"] = default_text_encoder().similarity(
                [s.caption for s in scenes], list(rec_caps)).numpy()
    if inception:
        feats = inception_features()
        fa, fb = feats(refs), feats(recs)
        df["inception_similarity"] = (fa * fb).sum(1) / (
            np.linalg.norm(fa, axis=1) * np.linalg.norm(fb, axis=1) + 1e-12)
        if len(refs) >= 2:
            extra["fid"] = fid_from_features(fa, fb)
    return df, extra
