"""The simulator carries the real SDGIC codec (a tiny random preset) end to end."""

import pytest

from sim import SimConfig
from sim.simulation import simulate

from simtest_support import AWGN

pytest.importorskip("codec.sdgic")


def test_sdgic_end_to_end(tiny_preset):
    from codec.sdgic import SDGIC

    codec = SDGIC.from_pretrained(tiny_preset)
    cfg = SimConfig(AWGN, snr_db=-1.0, policy="uep", num_images=3, seed=0, codec=codec,
                    decode=True, decode_steps=2, interval_ms=2.0, deadline_ms=2.0,
                    rsrt_tokens_per_packet=1, dataset={"kind": "scenes", "size": 16, "seed": 0})
    out = simulate(cfg)
    r = out.records
    assert len(r) == 3 and r.rsrt_tokens.eq(codec.max_tokens).all()
    assert {"consistency", "psnr"} <= set(r.columns)
    assert r.consistency.between(0, 1).all()
    assert all(x.shape == (16, 16, 3) for x in out.reconstructions)
    # what was decoded is what arrived
    for img, (_, row) in zip(out.images, r.iterrows()):
        assert img.received.has("hci") == bool(row.ok_hci)
    again = simulate(cfg)
    assert (again.records.consistency.to_numpy() == r.consistency.to_numpy()).all()
