"""Which calibration of the PHY abstraction a run uses.

A scenario's calibration (:mod:`channels.calibration`, made by ``sdgic calibrate``) corrects
the abstraction's effective SINR so that its packet errors follow the bit-level chain on that
scenario. :attr:`sim.config.SimConfig.calibration` says what the simulator does with it:

* ``"auto"`` (default): use the scenario's calibration when one exists; otherwise run the raw
  abstraction and warn once per scenario (:class:`UncalibratedScenarioWarning`), naming the
  command that calibrates it;
* ``"strict"``: refuse an abstraction-mode run of an uncalibrated scenario;
* ``"off"``: always the raw abstraction (Sionna's AWGN tables), no warning.

Bit-level runs use no calibration. Records say what each run used (:func:`calibration_label`).
"""

from __future__ import annotations

import warnings
__all__ = ["SETTINGS", "UncalibratedScenarioWarning", "resolve_calibration",
           "calibration_label", "forget_calibrations"]

SETTINGS = ("auto", "strict", "off")

_FOUND: dict = {}          # scenario key -> Calibration or None (looked up once per process)
_WARNED: set = set()


class UncalibratedScenarioWarning(UserWarning):
    """An abstraction-mode run uses a scenario that has no calibration."""


def _hint(scenario) -> str:
    return (f"calibrate it with `sdgic calibrate <the TOML of scenario {scenario.name!r}>` "
            f"(`--quick` for a rough one)")


def resolve_calibration(scenario, mode: str, setting: str = "auto"):
    """The :class:`~channels.calibration.Calibration` a run of ``scenario`` in ``mode`` uses,
    or `None` (bit level, ``"off"``, or none found under ``"auto"``, with a warning once per
    scenario). Raises ``ValueError`` under ``"strict"`` when none is found."""
    from channels.calibration import find_calibration, scenario_key

    if setting not in SETTINGS:
        raise ValueError(f"calibration = {setting!r} is not supported; allowed: "
                         f"{', '.join(SETTINGS)}")
    if mode != "abstraction" or setting == "off":
        return None
    key = scenario_key(scenario)
    if key not in _FOUND:
        _FOUND[key] = find_calibration(scenario)
    cal = _FOUND[key]
    if cal is None:
        if setting == "strict":
            raise ValueError(f"scenario {scenario.name!r} (key {key}) has no calibration and "
                             f"calibration = 'strict' refuses the raw abstraction; "
                             f"{_hint(scenario)}")
        if key not in _WARNED:
            _WARNED.add(key)
            warnings.warn(f"scenario {scenario.name!r} has no calibration: abstraction mode "
                          f"uses Sionna's AWGN BLER tables uncorrected, which can be several dB "
                          f"optimistic with estimated channels or short packets; "
                          f"{_hint(scenario)}", UncalibratedScenarioWarning, stacklevel=3)
    return cal


def calibration_label(cal, mode: str) -> str:
    """What records say: ``"name@key"`` of the calibration used, ``"none"`` (abstraction
    without one) or ``""`` (bit level)."""
    if mode != "abstraction":
        return ""
    return "none" if cal is None else cal.describe()


def forget_calibrations() -> None:
    """Look calibrations up again (after ``sdgic calibrate`` in the same process) and warn
    again."""
    _FOUND.clear()
    _WARNED.clear()

