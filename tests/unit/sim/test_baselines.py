"""Baseline codecs in the simulator: bit budgets, lost packets, records, experiment grids."""

import numpy as np
import pytest

from sim import SimConfig
from sim.simulation import simulate

from simtest_support import AWGN, BASELINE


def _mae(refs, recs, items):
    return [{"mae": float(np.abs(a.astype(int) - b.astype(int)).mean())}
            for a, b in zip(refs, recs)]


def cfg(**kw):
    base = dict(scenario=AWGN, snr_db=25.0, policy="eep", budget_prbs=6, num_images=3, seed=0,
                codec="webp", decode=True, interval_ms=2.0, deadline_ms=3.0,
                bit_budget={"kind": "bpp", "bpp": 0.4})
    base.update(kw)
    return SimConfig(**base)


def test_bpp_budget_holds_and_a_clean_link_delivers_the_images():
    out = simulate(cfg(), metrics=_mae)
    r = out.records
    assert (r.budget_bits == int(0.4 * 64 * 64)).all()
    assert (r.bits_total <= r.budget_bits).all() and (r.bits_total > 0).all()
    assert r.ok_hci.all() and r.complete.all()
    assert ((r.classical_scale > 0) & (r.classical_scale <= 1)).all()
    assert (r.bit_budget == "bpp:0.4").all() and r.system.str.startswith("webp eep").all()
    assert (r.mae < 30).all()


def test_a_lost_packet_loses_the_image():
    c = cfg(snr_db=-10.0)
    out = simulate(c, metrics=_mae)
    r = out.records
    assert (r.packets_hci > 1).all()               # several packets per image
    lost = r[~r.ok_hci]
    assert len(lost) == len(r)                     # nothing gets through at -10 dB
    for im, rec in zip(out.images, out.reconstructions):
        assert not im.received.has("hci")
        assert (rec == 128).all()                  # the receiver shows grey
    # at a medium SNR some images lose only part of their packets: still lost
    mid = simulate(cfg(snr_db=0.0, num_images=6, budget_prbs=2), metrics=_mae).records
    part = mid[(mid.delivered_packets_hci > 0) & (mid.delivered_packets_hci < mid.packets_hci)]
    assert len(part) > 0
    assert (~part.ok_hci).all()


def test_same_re_budget_fits_the_reference_resource_elements():
    from sim.packetizer import Packetizer
    from sim.policy import make_policy
    from sim.simulation import get_link
    from sim.source import make_source
    from sim.codec_api import load_codec

    c = cfg(codec="jpeg", policy="eep", bit_budget={"kind": "same_re", "reference": BASELINE,
                                                    "reference_policy": "uep"},
            budget_prbs=11, decode=False)
    out = simulate(c)
    link = get_link(c.scenario_obj, "abstraction")
    ref = load_codec(BASELINE)
    src = make_source(c.dataset)
    ref_pk = Packetizer(link, make_policy("uep"), c.budget_re)
    pk = Packetizer(link, make_policy("eep"), c.budget_re)
    for i, row in out.records.iterrows():
        ref_re = ref_pk.image_re(ref.encode(src[i].image, caption=src[i].caption))
        assert row.budget_bits == pk.max_stream_bits("hci", ref_re)
        assert pk.stream_re("hci", row.budget_bits) <= ref_re
        assert pk.stream_re("hci", row.budget_bits + 8) > ref_re
        assert row.bits_total <= row.budget_bits


def test_fill_budget_uses_the_link_share_between_arrivals():
    c = cfg(bit_budget={"kind": "fill"}, decode=False, policy="eep")
    out = simulate(c)
    from sim.packetizer import Packetizer
    from sim.simulation import get_link

    pk = Packetizer(get_link(AWGN, "abstraction"), c.policy_obj, c.budget_re)
    share = int(c.budget_re * c.interval_ms / c.slot_ms)
    b = out.records.budget_bits.iloc[0]
    assert pk.stream_re("hci", b) <= share < pk.stream_re("hci", b + 8)


def test_records_of_classical_and_three_stream_runs_share_columns():
    a = simulate(cfg(), metrics=_mae).records
    b = simulate(cfg(codec=BASELINE, bit_budget=None), metrics=_mae).records
    assert set(b.columns) - set(a.columns) == set()
    assert set(a.columns) - set(b.columns) == {"classical_scale"}
    assert (b.bit_budget == "").all() and (b.budget_bits == -1).all()
    assert np.allclose(b.bpp, b.bits_total / (64 * 64))


def test_bit_budget_on_a_codec_with_its_own_rate_is_refused():
    with pytest.raises(ValueError, match="applies to the baseline codecs"):
        simulate(cfg(codec=BASELINE), metrics=_mae)
    with pytest.raises(ValueError, match="bit_budget.kind"):
        cfg(bit_budget={"kind": "half"})
    with pytest.raises(ValueError, match="bit_budget.bpp"):
        cfg(bit_budget={"kind": "bpp", "bpp": -1})
    with pytest.raises(ValueError, match="unknown key bit_budget.bpp"):
        cfg(bit_budget={"kind": "fill", "bpp": 1})
    with pytest.raises(ValueError, match="codes to a budget itself"):
        simulate(cfg(bit_budget={"kind": "same_bits", "reference": "avif"}), metrics=_mae)


def test_budgeted_points_get_their_own_ids_and_unbudgeted_ids_do_not_move():
    a = cfg(bit_budget={"kind": "bpp", "bpp": 0.4}).point_id()
    b = cfg(bit_budget={"kind": "bpp", "bpp": 0.5}).point_id()
    assert a != b
    assert "bit_budget" not in cfg(codec=BASELINE, bit_budget=None).to_dict()


def test_experiment_grid_of_codecs(tmp_path):
    from sim.experiment import load_experiment


    (tmp_path / "awgn.toml").write_text('name = "a"\n[channel]\nmodel = "AWGN"\n'
                                        '[receiver]\nchannel_estimation = "perfect"\n')
    (tmp_path / "e.toml").write_text(f'''
name = "g"
codec = "{BASELINE}"
[grid]
scenarios = ["awgn.toml"]
snr_db = [0, 10]
policies = ["eep", "uep"]
codecs = ["{BASELINE}", {{codec = "webp", policies = ["eep"]}},
          {{codec = "jpeg", policies = ["eep"], bit_budget = {{kind = "bpp", bpp = 1.0}}}}]
[bit_budget]
kind = "same_bits"
reference = "{BASELINE}"
''')
    e = load_experiment(tmp_path / "e.toml")
    pts = e.points()
    assert len(pts) == len(e) == 2 * 2 + 2 + 2
    by = {(p.codec, p.policy_obj.name): p.bit_budget for p in pts}
    assert by[(BASELINE, "uep")] is None                      # its own rate: no budget
    assert by[("webp", "eep")]["kind"] == "same_bits"         # the experiment's [bit_budget]
    assert by[("jpeg", "eep")] == {"kind": "bpp", "bpp": 1.0}
    (tmp_path / "bad.toml").write_text((tmp_path / "e.toml").read_text().replace(
        '{codec = "webp", policies = ["eep"]}',
        f'{{codec = "{BASELINE}", bit_budget = {{kind = "fill"}}}}'))
    with pytest.raises(ValueError, match="bit_budget only on a baseline"):
        load_experiment(tmp_path / "bad.toml")


def test_plots_keep_codecs_that_share_a_policy_apart(tmp_path):
    import pandas as pd

    from sim.plots import _lines_by_system, plot_results

    a = simulate(cfg(snr_db=10.0), metrics=_mae).records
    b = simulate(cfg(codec=BASELINE, bit_budget=None, snr_db=10.0), metrics=_mae).records
    df = pd.concat([a, b], ignore_index=True)
    assert _lines_by_system(df).policy.nunique() == 2          # both "eep", two lines
    assert _lines_by_system(b).policy.tolist() == b.policy.tolist()
    files = plot_results(df, tmp_path, metric="mae")
    assert any(f.name == "mae_vs_snr.png" for f in files), [f.name for f in files]


def test_a_sliced_hci_loses_only_the_slices_whose_packets_are_lost(tmp_path):
    """The photo HCI alone travels as slices; dropping one slice's packet at the receiver
    leaves the other bands of the picture bit-identical."""
    from PIL import Image

    from sim.codec_api import load_codec
    from sim.packetizer import Packetizer
    from sim.receiver import ImageInFlight, Receiver
    from sim.simulation import get_link
    from codec.streams.hci_sliced import SlicedHCI

    from image_support import photo

    Image.fromarray(photo(300, 200)).save(tmp_path / "p.png")
    codec = load_codec("hci@codec/weights/hci-photos")
    c = cfg(codec="hci@codec/weights/hci-photos", bit_budget={"kind": "bpp", "bpp": 0.3},
            dataset={"kind": "folder", "path": str(tmp_path)}, num_images=1,
            interval_ms=20.0, deadline_ms=30.0)      # room for the whole photo
    enc = codec.encode(photo(300, 200), budget_bits=int(0.3 * 300 * 200))
    assert enc.hci_slices is not None and len(enc.hci_slices) == 3
    pk = Packetizer(get_link(AWGN, "abstraction"), c.policy_obj, c.budget_re)
    packets = pk.packetize(enc, 0, 0.0, 10.0)
    assert {p.slice for p in packets} == {0, 1, 2}
    rx = Receiver()
    img = ImageInFlight(0, enc, 0.0, 10.0)
    img.packets = packets
    rx.expect(img)
    for p in packets:
        if p.slice != 1:
            p.delivered_at = 1.0
            rx.put(p, 1.0)
    rx.finalize(img, 10.5)
    assert img.received.lost_slices() == [1] and not img.corrupted
    full, part = codec.decode(enc), codec.decode(img.received)
    rows = SlicedHCI(codec.hci[codec.encoding_info(enc)["hci_rate"]]).slice_rows_px(1, 300)
    margin = 62
    keep = np.ones(300, bool)
    keep[max(0, rows[0] - margin):rows[1] + margin] = False
    assert (full[keep] == part[keep]).all() and not (full[~keep] == part[~keep]).all()
    # and a whole run records the slices
    out = simulate(c, metrics=_mae)
    r = out.records
    assert (r.hci_slices == 3).all() and (r.hci_slices_received == 3).all() and r.ok_hci.all()
    assert (out.reconstructions[0] == full).all()
