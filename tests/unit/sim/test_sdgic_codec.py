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
    assert (r.decoded_streams == r.streams_received).all()      # nothing was rejected


def test_undecodable_stream_of_one_image_does_not_change_another(tiny_preset):
    """Bit level can deliver CRC-passing wrong bits. Image 0's RSRT token is outside the
    codebook (undecodable); image 1's caption is wrong but decodable. Only image 0 loses its
    bad stream; image 1 decodes exactly as it would have next to a clean image."""
    import dataclasses

    from codec.sdgic import SDGIC
    from sim.receiver import ImageInFlight
    from sim.simulation import _decode_and_score, _derive
    from sim.source import make_source

    codec = SDGIC.from_pretrained(tiny_preset)
    cfg = SimConfig(AWGN, snr_db=10.0, num_images=2, seed=0, codec=codec, decode=True,
                    decode_steps=2, dataset={"kind": "scenes", "size": 16, "seed": 0})
    src = make_source(cfg.dataset)
    items = [src[0], src[1]]
    enc = [codec.encode(it.image, caption=it.caption) for it in items]
    assert codec.rsrt_encoder.fsq.codebook_size < 2 ** codec.token_bits
    bad = dataclasses.replace(enc[0], rsrt_tokens=(2 ** codec.token_bits - 1,)
                              + enc[0].rsrt_tokens[1:])
    wrong_caption = dataclasses.replace(
        enc[1], caption=codec.caption_coder.encode("a small green square at the top left"))
    assert wrong_caption.caption != enc[1].caption
    images = [ImageInFlight(0, enc[0], 0.0, 4.0, received=bad, corrupted=["rsrt"]),
              ImageInFlight(1, enc[1], 0.0, 4.0, received=wrong_caption, corrupted=["caption"])]
    recs = _decode_and_score(cfg, codec, images, items,
                             metrics=lambda refs, recs, its: [{} for _ in recs])
    seeds = [_derive("decode", 0, i) % (2 ** 31) for i in (0, 1)]
    expect = codec.decode_batch([bad.without("rsrt"), wrong_caption], seeds, steps=2)
    assert (recs[1] == expect[1]).all() and (recs[0] == expect[0]).all()
    assert images[0].decoded == bad.without("rsrt")         # only the bad stream dropped
    assert images[1].decoded == wrong_caption               # decodable: kept as received


def test_scenes_are_captioned_at_the_codec_caption_detail(tiny_preset, tmp_path):
    """A preset trained on layout captions is sent layout captions by the simulator."""
    import dataclasses

    from codec.sdgic import SDGIC
    from sim.source import EncodeCache, SceneSource

    from sim.source import codec_cache_key

    codec = SDGIC.from_pretrained(tiny_preset)
    source = SceneSource(size=16, seed=0)
    item, cache = source[2], EncodeCache(tmp_path / "enc")     # one cache for both codecs
    full = cache.get(codec, source, item)
    assert codec.caption_coder.decode(full.caption) == item.scene.caption
    layout = dataclasses.replace(codec, caption_detail="layout")
    enc = cache.get(layout, source, item)
    assert codec.caption_coder.decode(enc.caption) == item.scene.describe("layout")
    assert codec_cache_key(layout) != codec_cache_key(codec)
    cfg = SimConfig(AWGN, snr_db=0.0, codec=codec, num_images=1)
    assert cfg.point_id() != cfg.replace(codec=layout).point_id()
