"""Shared fixtures of the simulator tests: small scenarios, the baseline codec, links."""

import pytest
import torch
from simtest_support import AWGN, BASELINE

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def baseline_codec():
    from sim.codec_api import load_codec

    return load_codec(BASELINE)


@pytest.fixture(scope="session")
def awgn_link():
    from sim.simulation import get_link

    return get_link(AWGN, "abstraction")
