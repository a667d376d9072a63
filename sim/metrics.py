"""Metrics of a reconstruction: semantic consistency (scene judge) and pixel fidelity.

:class:`ImageMetrics` scores a batch: ``psnr`` [dB] and ``ms_ssim`` for every image; for
procedural scenes, the judge's ``consistency`` (fraction of ground-truth attributes recovered)
and its per-attribute parts (``judge_position``, ``judge_shape``, ...); for other images
(photos), ``inception_similarity`` (cosine similarity of Inception-v3 pool features,
:class:`benchmark.metrics.InceptionFeatures`). A reconstruction of another size is resized to the
reference's first. Any callable with the same signature can replace
it (``run_simulation(..., metrics=fn)``):

    metrics(references: list[uint8 (H, W, 3)], reconstructions: list[uint8 (H', W', 3)],
            items: list[SourceItem]) -> list[dict[str, float]]
"""

from __future__ import annotations

import numpy as np

__all__ = ["ImageMetrics"]


class ImageMetrics:
    """PSNR and MS-SSIM for every image; judge consistency where the item has a scene,
    Inception similarity where it has none.

    Parameters
    ----------
    judge_path : str or None
        Judge weights folder (default: the shipped judge).
    """

    def __init__(self, judge_path=None):
        self.judge_path = judge_path
        self._judge = None

    def _get_judge(self):
        if self._judge is None:
            from benchmark.judge import SceneJudge

            self._judge = SceneJudge(self.judge_path)
        return self._judge

    def __call__(self, references, reconstructions, items) -> list[dict]:
        from benchmark.metrics import ms_ssim, psnr, resize_to

        rows, recs = [], []
        for ref, rec in zip(references, reconstructions):
            h, w = ref.shape[:2]
            r = rec if rec.shape[:2] == (h, w) else \
                (resize_to(rec, h, w)[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
            rows.append({"psnr": float(psnr(ref, r)[0]), "ms_ssim": float(ms_ssim(ref, r)[0])})
            recs.append(r)
        photos = [i for i, it in enumerate(items) if getattr(it, "scene", None) is None]
        if photos:
            from benchmark.metrics import inception_features

            feats = inception_features()
            for i in photos:
                rows[i]["inception_similarity"] = float(
                    feats.similarity(references[i][None], recs[i][None])[0])
        idx = [i for i, it in enumerate(items) if getattr(it, "scene", None) is not None]
        if idx:
            judge = self._get_judge()
            same = len({reconstructions[i].shape for i in idx}) == 1
            groups = [idx] if same else [[i] for i in idx]
            for g in groups:
                scores = judge.consistency(np.stack([reconstructions[i] for i in g]),
                                           [items[i].scene for i in g])
                for i, sc in zip(g, scores):
                    rows[i].update({k if k == "consistency" else f"judge_{k}": float(v)
                                    for k, v in sc.items()})
        return rows
