"""Sionna PHY for the link simulator: scenarios, bit-level link, PHY abstraction,
NR transport (MCS, TBS, CRC, LDPC), outer-loop link adaptation (``channels.link_adaptation``)
and finite-blocklength bounds.

Public API::

    from channels import Scenario, load_scenario, Link, ChannelState, transport_format
    link = Link(load_scenario("experiments/scenarios/tdl_a_30khz.toml"), mode="bit")
    state = link.new_state(seed=1)
    result = link.transmit([512, 128], mcs_index=9, snr_db=8.0, slot=0, state=state)

``channels`` never imports ``codec`` or ``sim``. Imports of Sionna are deferred
to the submodules so that ``import channels`` stays cheap.
"""

from .scenario import (CHANNEL_MODELS, SUBCARRIER_SPACINGS_KHZ, ChannelConfig, OFDMConfig,
                       ReceiverConfig, Scenario, load_scenario)

__all__ = [
    "CHANNEL_MODELS", "SUBCARRIER_SPACINGS_KHZ", "ChannelConfig", "OFDMConfig", "ReceiverConfig",
    "Scenario", "load_scenario", "Link", "LinkResult", "ChannelState", "FadingChannel",
    "TransportFormat", "transport_format", "mcs_info", "bounds",
]

_LAZY = {
    "Link": "link", "LinkResult": "link", "ChannelState": "fading", "FadingChannel": "fading",
    "TransportFormat": "transport", "transport_format": "transport", "mcs_info": "transport",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    if name == "bounds":
        import importlib
        return importlib.import_module(".bounds", __name__)
    raise AttributeError(f"module 'channels' has no attribute {name!r}")
