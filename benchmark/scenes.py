"""Procedural scenes with exact ground-truth semantics.

A scene holds 1–3 objects on a background. Every object has a shape, a colour, a size, a grid
cell (3×3) and a texture; the background has a kind. The renderer draws at ``SUPERSAMPLE``× the
output size and box-filters down, so edges are anti-aliased. Everything is deterministic given
``(seed, index)``: scene ``i`` of a data set with seed ``K`` is the same whichever order or
process renders it.

Small objects (about 12 % of the image side) carry their texture and exact shape in a few
pixels, which a 16×16 thumbnail cannot resolve: those are the ambiguities the codec's residual
tokens must carry.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
from PIL import Image, ImageDraw

from codec.preset import check_caption_detail

SHAPES = ("circle", "square", "triangle", "star", "ring", "cross", "hexagon", "diamond")
COLOURS = {
    "red": (220, 38, 38),
    "orange": (247, 143, 24),
    "yellow": (240, 222, 40),
    "green": (34, 168, 60),
    "cyan": (36, 206, 214),
    "blue": (36, 72, 224),
    "purple": (142, 52, 196),
    "pink": (250, 136, 200),
}
COLOUR_NAMES = tuple(COLOURS)
SIZES = ("small", "large")
TEXTURES = ("solid", "striped", "dotted", "checkered")
BACKGROUNDS = ("plain", "gradient", "noise", "photo")
POSITIONS = (
    "top left", "top", "top right",
    "left", "centre", "right",
    "bottom left", "bottom", "bottom right",
)
# How each grid cell reads in a caption.
_POSITION_PHRASES = (
    "at the top left", "at the top", "at the top right",
    "on the left", "in the centre", "on the right",
    "at the bottom left", "at the bottom", "at the bottom right",
)
SUPERSAMPLE = 4
# Object radius as a fraction of the cell side, by size class.
_RADIUS = {"small": 0.19, "large": 0.42}
# Shapes that look the same under rotation are not rotated.
_ROTATES = {"square", "triangle", "star", "cross", "hexagon", "diamond"}


@dataclasses.dataclass(frozen=True)
class SceneObject:
    """One object: its class attributes and grid cell (``cell = 3 * row + col``)."""

    shape: str
    colour: str
    size: str
    cell: int
    texture: str

    @property
    def position(self) -> str:
        return POSITIONS[self.cell]

    def phrase(self, detail: str = "full") -> str:
        """How a caption names this object at ``detail`` (see ``CAPTION_DETAILS``)."""
        check_caption_detail(detail)
        where = _POSITION_PHRASES[self.cell]
        if detail == "layout":
            return f"{_article(self.colour)} {self.colour} object {where}"
        if detail == "concise":
            return f"{_article(self.colour)} {self.colour} {self.shape}"
        texture = "" if self.texture == "solid" else f" {self.texture}"
        return f"a {self.size} {self.colour}{texture} {self.shape} {where}"


@dataclasses.dataclass(frozen=True)
class Scene:
    """A scene's ground truth. ``background_word`` is how the caption names the background."""

    objects: tuple[SceneObject, ...]
    background: str
    background_word: str

    @property
    def caption(self) -> str:
        """A natural caption that states every attribute (solid texture is left unsaid)."""
        return self.describe("full")

    def describe(self, detail: str = "full") -> str:
        """The caption at ``detail``: ``"full"`` states every attribute; ``"layout"`` only each
        object's colour and position and the background, leaving shape, size and texture to
        the other streams; ``"concise"`` each object's colour and shape and the background, as
        an image captioner writes, leaving size, texture and position to the other streams."""
        parts = [o.phrase(detail) for o in self.objects]
        body = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
        return f"{body} on {_article(self.background_word)} {self.background_word} background"

    def to_dict(self) -> dict:
        return {
            "caption": self.caption,
            "background": self.background,
            "background_word": self.background_word,
            "objects": [dict(dataclasses.asdict(o), position=o.position) for o in self.objects],
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Scene":
        objs = tuple(
            SceneObject(o["shape"], o["colour"], o["size"], int(o["cell"]), o["texture"])
            for o in d["objects"]
        )
        return cls(objs, d["background"], d["background_word"])


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def sample_scene(rng: np.random.Generator) -> Scene:
    """Draw a scene's attributes uniformly: 1–3 objects in distinct cells."""
    n = int(rng.integers(1, 4))
    cells = rng.choice(9, size=n, replace=False)
    objects = tuple(
        SceneObject(
            shape=SHAPES[rng.integers(len(SHAPES))],
            colour=COLOUR_NAMES[rng.integers(len(COLOUR_NAMES))],
            size=SIZES[rng.integers(len(SIZES))],
            cell=int(c),
            texture=TEXTURES[rng.integers(len(TEXTURES))],
        )
        for c in sorted(cells)
    )
    background = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    if background == "photo":
        word = _photo_bank()[int(rng.integers(len(_photo_bank())))][0]
    else:
        word = {"plain": "plain", "gradient": "shaded", "noise": "mottled"}[background]
    return Scene(objects, background, word)


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _photo_bank() -> tuple[tuple[str, np.ndarray], ...]:
    """Natural photographs shipped inside the scikit-image wheel (no network), as float RGB.

    Each carries the word the caption uses for it. Grey photos are tinted so the background
    still looks natural in colour.
    """
    from skimage import data

    def rgb(a):
        a = np.asarray(a, dtype=np.float32) / 255.0
        return a if a.ndim == 3 else np.repeat(a[..., None], 3, axis=2)

    bank = []
    for name, word, tint in (
        ("grass", "grassy", (0.55, 0.75, 0.35)),
        ("gravel", "gravelly", (0.8, 0.75, 0.7)),
        ("brick", "brick", (0.85, 0.55, 0.45)),
        ("coffee", "coffee", None),
        ("chelsea", "furry", None),
        ("rocket", "sky", None),
    ):
        try:
            img = rgb(getattr(data, name)()[..., :3] if name in ("coffee", "chelsea", "rocket")
                      else getattr(data, name)())
        except Exception:  # an image fetched from the network is absent offline: skip it
            continue
        if tint is not None:
            img = img * np.asarray(tint, dtype=np.float32)
        bank.append((word, img))
    if not bank:
        raise RuntimeError("no natural photographs found in scikit-image's bundled data")
    return tuple(bank)


def _background(scene: Scene, size: int, rng: np.random.Generator) -> np.ndarray:
    """Background as float32 (size, size, 3) in [0, 1]. Muted, so objects stand out."""
    def muted():
        return rng.uniform(0.25, 0.75) + rng.uniform(-0.08, 0.08, size=3)

    if scene.background == "plain":
        return np.broadcast_to(muted(), (size, size, 3)).astype(np.float32).copy()
    if scene.background == "gradient":
        a, b = muted(), muted()
        if np.abs(a - b).max() < 0.25:
            b = np.clip(a + np.sign(0.5 - a.mean()) * 0.3, 0, 1)
        theta = rng.uniform(0, 2 * math.pi)
        y, x = np.mgrid[0:size, 0:size] / max(size - 1, 1)
        t = (np.cos(theta) * (x - 0.5) + np.sin(theta) * (y - 0.5)) / math.sqrt(0.5) + 0.5
        t = np.clip(t, 0, 1)[..., None]
        return ((1 - t) * a + t * b).astype(np.float32)
    if scene.background == "noise":
        base = muted()
        field = np.zeros((size, size), np.float32)
        for octave, amp in ((4, 0.5), (8, 0.3), (16, 0.2)):
            small = rng.standard_normal((octave, octave)).astype(np.float32)
            img = Image.fromarray(small, mode="F").resize((size, size), Image.BICUBIC)
            field += amp * np.asarray(img)
        tint = rng.uniform(-0.12, 0.12, size=3)
        out = base + 0.12 * field[..., None] + tint * field[..., None]
        return np.clip(out, 0, 1).astype(np.float32)
    # photo: a random crop (zoomed) of a natural photograph, toned down
    word = scene.background_word
    photo = next(img for w, img in _photo_bank() if w == word)
    h, w = photo.shape[:2]
    side = int(rng.uniform(0.35, 0.9) * min(h, w))
    y0 = int(rng.integers(0, h - side + 1))
    x0 = int(rng.integers(0, w - side + 1))
    crop = photo[y0:y0 + side, x0:x0 + side]
    pil = Image.fromarray((crop * 255).astype(np.uint8)).resize((size, size), Image.BILINEAR)
    out = np.asarray(pil, dtype=np.float32) / 255.0
    return (0.25 + 0.6 * out).astype(np.float32)


def _shape_mask(shape: str, radius: float, angle: float, box: int,
                offset: tuple[float, float]) -> np.ndarray:
    """A hard mask (box, box) of the shape centred at ``offset`` (x, y); the caller's box
    filter anti-aliases it."""
    im = Image.new("L", (box, box), 0)
    draw = ImageDraw.Draw(im)
    cx, cy = offset
    r = radius

    def poly(points):
        rot = [(cx + x * math.cos(angle) - y * math.sin(angle),
                cy + x * math.sin(angle) + y * math.cos(angle)) for x, y in points]
        draw.polygon(rot, fill=255)

    def regular(n, rr, phase):
        return [(rr * math.cos(phase + 2 * math.pi * k / n), rr * math.sin(phase + 2 * math.pi * k / n))
                for k in range(n)]

    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    elif shape == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        ri = 0.55 * r
        draw.ellipse([cx - ri, cy - ri, cx + ri, cy + ri], fill=0)
    elif shape == "square":
        s = r * 0.82
        poly([(-s, -s), (s, -s), (s, s), (-s, s)])
    elif shape == "diamond":
        poly([(0, -r), (0.62 * r, 0), (0, r), (-0.62 * r, 0)])
    elif shape == "triangle":
        poly(regular(3, r, -math.pi / 2))
    elif shape == "hexagon":
        poly(regular(6, r * 0.95, 0.0))
    elif shape == "star":
        pts = []
        for k in range(10):
            rr = r if k % 2 == 0 else 0.42 * r
            a = -math.pi / 2 + math.pi * k / 5
            pts.append((rr * math.cos(a), rr * math.sin(a)))
        poly(pts)
    elif shape == "cross":
        t = 0.3 * r
        poly([(-t, -r), (t, -r), (t, -t), (r, -t), (r, t), (t, t), (t, r), (-t, r),
              (-t, t), (-r, t), (-r, -t), (-t, -t)])
    else:
        raise ValueError(f"shape={shape!r} is unknown; expected one of {SHAPES}")
    return np.asarray(im, dtype=np.float32) / 255.0


def _texture(texture: str, radius: float, box: int, phase: np.ndarray) -> np.ndarray:
    """Where the texture's secondary (dark) tone goes, as a (box, box) float mask."""
    if texture == "solid":
        return np.zeros((box, box), np.float32)
    y, x = np.mgrid[0:box, 0:box].astype(np.float32)
    # at least 3 output pixels per period, so textures survive at 64×64
    period = max(radius * 0.55, 3.0 * SUPERSAMPLE)
    if texture == "striped":
        u = (x + y) / math.sqrt(2) + phase[0] * period
        return ((u % period) < period / 2).astype(np.float32)
    if texture == "checkered":
        return (((x // (period * 0.8)) + (y // (period * 0.8))) % 2).astype(np.float32)
    if texture == "dotted":
        cx = (x % period) - period / 2
        cy = (y % period) - period / 2
        return (cx * cx + cy * cy < (0.3 * period) ** 2).astype(np.float32)
    raise ValueError(f"texture={texture!r} is unknown; expected one of {TEXTURES}")


def render(scene: Scene, size: int = 128, seed: int | tuple = 0) -> np.ndarray:
    """Render ``scene`` as uint8 RGB (size, size, 3).

    ``seed`` drives only the nuisance variables (background details, jitter, rotation), so the
    same scene renders identically for the same seed.
    """
    if size < 16:
        raise ValueError(f"size={size} is too small to draw a scene; use size >= 16")
    rng = np.random.default_rng(seed)
    ss = SUPERSAMPLE
    canvas = _background(scene, size, rng)
    cell = size * ss / 3.0  # in supersampled pixels
    for obj in scene.objects:
        row, col = divmod(obj.cell, 3)
        radius = _RADIUS[obj.size] * cell * rng.uniform(0.92, 1.05)
        jitter = (1.0 - 2.1 * _RADIUS[obj.size]) * cell * 0.5
        cx = (col + 0.5) * cell + rng.uniform(-1, 1) * jitter * 0.6
        cy = (row + 0.5) * cell + rng.uniform(-1, 1) * jitter * 0.6
        angle = math.radians(rng.uniform(-12, 12)) if obj.shape in _ROTATES else 0.0
        # The object's box, aligned to whole output pixels: it is drawn at ``ss``× and
        # box-filtered to coverage (alpha) and colour, then composited at output size.
        n = int(math.ceil((2 * radius + 4) / ss))
        px0, py0 = int(round(cx / ss - n / 2)), int(round(cy / ss - n / 2))
        box = n * ss
        mask = _shape_mask(obj.shape, radius, angle, box, offset=(cx - px0 * ss, cy - py0 * ss))
        dark = _texture(obj.texture, radius, box, rng.uniform(0, 1, size=2))
        base = np.asarray(COLOURS[obj.colour], np.float32) / 255.0
        tone = base[None, None, :] * (1.0 - 0.62 * dark[..., None]) * mask[..., None]
        alpha = mask.reshape(n, ss, n, ss).mean(axis=(1, 3))[..., None]
        premult = tone.reshape(n, ss, n, ss, 3).mean(axis=(1, 3))
        ys = slice(max(py0, 0), min(py0 + n, size))
        xs = slice(max(px0, 0), min(px0 + n, size))
        my, mx = slice(ys.start - py0, ys.stop - py0), slice(xs.start - px0, xs.stop - px0)
        canvas[ys, xs] = canvas[ys, xs] * (1 - alpha[my, mx]) + premult[my, mx]
    return np.clip(canvas * 255.0 + 0.5, 0, 255).astype(np.uint8)


def generate(index: int, seed: int = 0, size: int = 128) -> tuple[np.ndarray, Scene]:
    """Scene ``index`` of the data set with ``seed``: (uint8 image (size, size, 3), Scene)."""
    rng = np.random.default_rng([seed, index, 0])
    scene = sample_scene(rng)
    image = render(scene, size=size, seed=[seed, index, 1])
    return image, scene
