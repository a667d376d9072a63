"""Shared fixtures of the simulator tests: small scenarios, the baseline codec, links."""

import pytest
import torch


torch.set_num_threads(1)

from simtest_support import AWGN, BASELINE, RAYLEIGH  # noqa: E402,F401


@pytest.fixture(scope="session")
def baseline_codec():
    from sim.codec_api import load_codec

    return load_codec(BASELINE)


@pytest.fixture(scope="session")
def awgn_link():
    from sim.simulation import get_link

    return get_link(AWGN, "abstraction")
