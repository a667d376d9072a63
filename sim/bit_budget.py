"""Bit budgets of the baseline codecs: how many bits each image may use.

Codecs that code to a budget (``takes_bit_budget``: the classical ``jpeg``, ``webp``, ``avif``
and the learned ``hci`` alone) get, per image, the bits of a :class:`BitBudget`:

* ``"same_bits"``: the payload bits (every stream) the ``reference`` codec spends on the same
  image;
* ``"same_re"``: as many bits as fit, at this run's HCI-stream MCS, in the resource elements
  the ``reference`` codec's packets take at the first transmission under
  ``reference_policy`` (so a baseline sent at a more robust MCS gets fewer bits);
* ``"bpp"``: ``bpp × height × width`` bits;
* ``"fill"``: the link's whole share: as many bits as fit, at this run's HCI-stream MCS and
  first transmission, in the resource elements the per-slot budget offers between two
  arrivals (``budget_re × interval_ms / slot``), leaving no room for retransmissions. With
  one policy per MCS this gives the usual "codec + LDPC at each MCS" baseline family.

TOML (an experiment's ``[bit_budget]`` table, or ``bit_budget`` of a ``grid.codecs`` entry)::

    [bit_budget]
    kind = "same_re"            # "same_bits", "same_re", "bpp", "fill"
    reference = "scenes-64"     # codec spec of the reference (same_bits, same_re)
    reference_policy = "uep"    # preset name (same_re)
    bpp = 0.25                  # (bpp)

The records name the budget (column ``bit_budget``, :meth:`BitBudget.describe`) and give each
image's ``budget_bits``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .validation import fail

__all__ = ["BitBudget", "BUDGET_KINDS", "DEFAULT_BIT_BUDGET"]

BUDGET_KINDS = ("same_bits", "same_re", "bpp", "fill")
_KEYS = {"same_bits": ("kind", "reference"), "same_re": ("kind", "reference", "reference_policy"),
         "bpp": ("kind", "bpp"), "fill": ("kind",)}
#: what a budgeted codec gets when the experiment names no budget
DEFAULT_BIT_BUDGET = {"kind": "same_bits", "reference": "scenes-64"}


@dataclass(frozen=True)
class BitBudget:
    """Per-image bit budget (see the module docstring)."""

    kind: str = "same_bits"
    reference: str = "scenes-64"
    reference_policy: str = "uep"
    bpp: Optional[float] = None

    def __post_init__(self):
        from .policy import PRESETS

        if self.kind not in BUDGET_KINDS:
            fail("bit_budget.kind", self.kind, ", ".join(BUDGET_KINDS))
        if self.kind == "fill":
            pass
        elif self.kind == "bpp":
            b = self.bpp
            if isinstance(b, bool) or not isinstance(b, (int, float)) or not 0 < b <= 24:
                fail("bit_budget.bpp", b, "a number in (0, 24] (bits per pixel)")
        elif not isinstance(self.reference, str) or not self.reference:
            fail("bit_budget.reference", self.reference, "a codec spec (e.g. 'scenes-64')")
        if self.kind == "same_re" and self.reference_policy not in PRESETS:
            fail("bit_budget.reference_policy", self.reference_policy, ", ".join(PRESETS))

    @classmethod
    def from_dict(cls, d: dict) -> "BitBudget":
        if isinstance(d, BitBudget):
            return d
        if not isinstance(d, dict):
            fail("bit_budget", d, "a table with kind = " + ", ".join(BUDGET_KINDS))
        kind = d.get("kind")
        if kind not in BUDGET_KINDS:
            fail("bit_budget.kind", kind, ", ".join(BUDGET_KINDS))
        for k in d:
            if k not in _KEYS[kind]:
                raise ValueError(f"unknown key bit_budget.{k} for kind {kind!r}; allowed keys: "
                                 f"{', '.join(_KEYS[kind])}")
        return cls(**d)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in _KEYS[self.kind]}

    def describe(self) -> str:
        """``"same_re:scenes-64/uep"``, ``"same_bits:scenes-64"`` or ``"bpp:0.25"``."""
        if self.kind in ("bpp", "fill"):
            return f"bpp:{self.bpp:g}" if self.kind == "bpp" else "fill"
        if self.kind == "same_re":
            return f"same_re:{self.reference}/{self.reference_policy}"
        return f"same_bits:{self.reference}"

    def bits(self, item, encoded_reference, link=None, packetizer=None,
             reference_packetizer=None, slots_per_image: float = 1.0) -> int:
        """The budget [bits] of one image.

        ``item``: the :class:`~sim.source.SourceItem`; ``encoded_reference``: the reference
        codec's encoding of it (same_bits, same_re); ``packetizer`` / ``reference_packetizer``:
        the run's and the reference policy's :class:`~sim.packetizer.Packetizer` (same_re,
        fill); ``slots_per_image``: slots between two arrivals (fill).
        """
        h, w = item.image.shape[:2]
        if self.kind == "bpp":
            return int(self.bpp * h * w)
        if self.kind == "fill":
            return packetizer.max_stream_bits("hci", int(packetizer.budget_re * slots_per_image))
        if self.kind == "same_bits":
            return int(encoded_reference.total_bits())
        ref_re = reference_packetizer.image_re(encoded_reference)
        return packetizer.max_stream_bits("hci", ref_re)
