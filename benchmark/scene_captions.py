"""Scene captions without rendering, and the caption coder's model fitted on them (the shipped
``codec/streams/caption_model.json`` is ``fit_scene_model("full")``)."""

from __future__ import annotations

import numpy as np

from benchmark.scenes import sample_scene
from codec.streams.caption_coder import fit_model

__all__ = ["scene_captions", "fit_scene_model"]


def scene_captions(n: int, seed: int, start: int = 0, detail: str = "full") -> list[str]:
    """Captions (at ``detail``, see ``Scene.describe``) of scenes ``start … start+n-1`` of
    scene data set ``seed`` (no rendering)."""
    # generate(i, seed) draws its Scene from exactly this generator
    return [sample_scene(np.random.default_rng([seed, i, 0])).describe(detail)
            for i in range(start, start + n)]


def fit_scene_model(detail: str = "full", n: int = 20000, seed: int = 7001, order: int = 3,
                    alpha: float = 1.0) -> dict:
    """:func:`fit_model` on ``n`` scene captions at ``detail`` of scene data set ``seed`` (the
    shipped ``caption_model.json`` is ``detail="full"`` with these defaults; about 3 s)."""
    return fit_model(scene_captions(n, seed, detail=detail), order=order, alpha=alpha,
                     source=f"{n} scene captions (detail {detail}), scene data set seed {seed} "
                            "(benchmark.scenes.sample_scene)")
