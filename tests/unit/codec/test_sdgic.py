import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from benchmark.scenes import generate
from codec.container import ContainerError, EncodedImage
from codec.sdgic import SDGIC


@pytest.fixture(scope="module")
def codec(tiny_preset):
    return SDGIC.from_pretrained(tiny_preset)


@pytest.fixture(scope="module")
def scene():
    img, sc = generate(3, seed=11, size=64)
    return img, sc.caption


def test_encode_streams_and_container_round_trip(codec, scene):
    img, caption = scene
    enc = codec.encode(img, caption=caption)
    assert enc.preset == "tiny-16:mid" and (enc.height, enc.width) == (64, 64)
    assert enc.has("caption") and enc.has("hci") and len(enc.rsrt_tokens) == 4
    assert enc.rsrt_bits == 10 and all(0 <= t < 1000 for t in enc.rsrt_tokens)
    assert codec.streams_of(enc)["caption"] == caption
    assert EncodedImage.from_bytes(enc.to_bytes()) == enc
    # the encoder is deterministic: same bytes twice
    assert codec.encode(img, caption=caption) == enc
    fewer = codec.encode(img, caption=caption, num_tokens=2, rate="low")
    assert fewer.rsrt_tokens == enc.rsrt_tokens[:2] and fewer.preset == "tiny-16:low"
    assert codec.encode(img, num_tokens=0).rsrt_tokens is None


def test_every_stream_subset_and_lost_tokens_decode(codec, scene):
    img, caption = scene
    enc = codec.encode(img, caption=caption)
    outs = {}
    for r in range(4):
        for drop in itertools.combinations(("caption", "hci", "rsrt"), r):
            rec = codec.decode(enc.without(*drop), steps=2)
            assert rec.shape == (64, 64, 3) and rec.dtype == np.uint8
            outs[drop] = rec
    rec = codec.decode(enc.with_lost_tokens([0, 2]), steps=2)
    assert rec.shape == (64, 64, 3)
    # each stream changes the result (the paths are wired)
    full = outs[()]
    for s in ("caption", "hci", "rsrt"):
        assert np.abs(full.astype(int) - outs[(s,)].astype(int)).max() > 0, s


def test_seeded_and_independent_of_batch(codec, scene):
    img, caption = scene
    enc = codec.encode(img, caption=caption)
    other = codec.encode(generate(5, seed=11, size=64)[0], caption="a large blue star")
    a = codec.decode(enc, seed=7, steps=3)
    b = codec.decode_batch([other.without("hci"), enc], seeds=[1, 7], steps=3)[1]
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    assert (codec.decode(enc, seed=7, steps=3) == a).all()
    assert not (codec.decode(enc, seed=8, steps=3) == a).all()


def test_strength_below_1_draws_images_without_hci_apart(codec, scene):
    img, caption = scene
    enc = codec.encode(img, caption=caption)
    other = codec.encode(generate(5, seed=11, size=64)[0], caption="a large blue star")
    alone = [codec.decode(e, seed=s, steps=3, strength=0.5)
             for e, s in ((other.without("hci"), 1), (enc, 7))]
    both = codec.decode_batch([other.without("hci"), enc], seeds=[1, 7], steps=3, strength=0.5)
    for x, y in zip(alone, both):
        assert np.abs(x.astype(int) - y.astype(int)).max() <= 1
    # without its HCI an image is drawn from pure noise, as at strength 1
    np.testing.assert_array_equal(alone[0], codec.decode(other.without("hci"), seed=1, steps=3))
    assert not (alone[1] == codec.decode(enc, seed=7, steps=3)).all()


def test_any_size_and_mode(codec):
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 255, (30, 47), dtype=np.uint8)
    enc = codec.encode(grey)
    assert (enc.height, enc.width) == (30, 47) and not enc.has("caption")
    assert codec.decode(enc, steps=1).shape == (30, 47, 3)
    with pytest.raises(ValueError, match="2×2"):
        codec.encode(np.zeros((1, 1, 3), np.uint8))


def test_networks_run_at_the_codec_resolution(tiny_preset, scene):
    """A resolution override (used by the decode benchmark) runs the networks at that size."""
    img, caption = scene
    big = SDGIC.from_pretrained(tiny_preset, resolution=32)
    shapes = []
    sample = big.sampler.sample

    def recording(*args, **kwargs):
        out = sample(*args, **kwargs)
        shapes.append(tuple(out.shape))
        return out

    big.sampler.sample = recording
    rec = big.decode(big.encode(img, caption=caption), steps=1)
    assert shapes == [(1, 3, 32, 32)] and rec.shape == (64, 64, 3)


def test_reload_gives_the_same_decoder(tiny_preset, codec, scene):
    img, caption = scene
    enc = codec.encode(img, caption=caption)
    again = SDGIC.from_pretrained(tiny_preset)
    assert (again.decode(enc, steps=2) == codec.decode(enc, steps=2)).all()


def test_wrong_preset_bad_rate_and_missing_folder(codec, scene, tmp_path):
    img, caption = scene
    enc = codec.encode(img, caption=caption)
    import dataclasses

    with pytest.raises(ContainerError, match="preset 'scenes-64'.*decoder is preset 'tiny-16'"):
        codec.decode(dataclasses.replace(enc, preset="scenes-64:mid"))
    with pytest.raises(ContainerError, match="rate point 'ultra'"):
        codec.decode(dataclasses.replace(enc, preset="tiny-16:ultra"))
    with pytest.raises(ContainerError, match="tokens"):
        codec.decode(dataclasses.replace(enc, rsrt_tokens=(1,) * 9))
    with pytest.raises(ValueError, match="rate='huge'"):
        codec.encode(img, rate="huge")
    with pytest.raises(FileNotFoundError, match="preset 'nope' not found"):
        SDGIC.from_pretrained("nope")
    (tmp_path / "preset.json").write_text('{"preset": "x", "resolution": 16, "hci": {}}')
    with pytest.raises(ValueError, match="preset.json: hci={}"):
        SDGIC.from_pretrained(tmp_path)
    (tmp_path / "preset.json").write_text('{"preset": "x", "resolution": 16, "hci": '
                                          '{"rate_points": ["mid"]}}')
    with pytest.raises(FileNotFoundError, match="no unet/"):
        SDGIC.from_pretrained(tmp_path)


def test_stable_diffusion_style_folder(tmp_path):
    """unet/ + controlnet/ + vae/ + text_encoder/ + tokenizer/ (tiny, random) load and run:
    the UNet works in the VAE's latent space and reads any transformers text encoder."""
    import shutil

    import torch
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import BertConfig, BertModel

    from codec.dpcd.decoder import LatentSpace
    from codec.preset import Preset
    from codec.sdgic import WEIGHTS, write_preset
    from codec.text_encoder import minilm_path

    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4,
                        norm_num_groups=8, sample_size=16)
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                                block_out_channels=(16, 32), layers_per_block=1,
                                attention_head_dim=2, norm_num_groups=8, cross_attention_dim=32)
    cn = ControlNetModel.from_unet(unet, conditioning_channels=4,
                                   conditioning_embedding_out_channels=(16,))
    folder = write_preset(tmp_path / "sd", Preset("sd-tiny", 16, str(WEIGHTS / "hci-64"),
                                                  ("low", "mid"), "mid"), unet, controlnet=cn,
                          vae=vae)
    BertModel(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=37)).save_pretrained(folder / "text_encoder")
    (folder / "tokenizer").mkdir()
    for f in minilm_path().iterdir():
        if "token" in f.name or f.name.startswith("vocab") or f.name == "special_tokens_map.json":
            shutil.copy(f, folder / "tokenizer" / f.name)
    codec = SDGIC.from_pretrained(folder)
    assert isinstance(codec.space, LatentSpace) and codec.text_encoder.dim == 32
    img, sc = generate(1, seed=2, size=16)
    enc = codec.encode(img, caption=sc.caption)
    for drop in ((), ("hci",), ("caption", "hci")):
        rec = codec.decode(enc.without(*drop), steps=2)
        assert rec.shape == (16, 16, 3) and rec.dtype == np.uint8


def test_bf16_decoding_is_close_to_fp32_and_a_preset_chooses_it(tiny_preset, codec, scene,
                                                               tmp_path, monkeypatch):
    import json
    import shutil

    import codec.sdgic as sdgic_module

    img, caption = scene
    enc = codec.encode(img, caption=caption)
    a = codec.decode(enc, steps=3, guidance_scale=3.0).astype(int)
    b = codec.decode(enc, steps=3, guidance_scale=3.0, precision="bf16").astype(int)
    assert a.shape == b.shape and (a != b).any()           # bf16 really ran
    assert np.abs(a - b).mean() < 12                        # ... and draws the same picture
    with pytest.raises(ValueError, match="precision='fp16'"):
        codec.decode(enc, steps=2, precision="fp16")

    folder = tmp_path / "p"
    shutil.copytree(tiny_preset, folder)
    cfg = json.loads((folder / "preset.json").read_text())
    (folder / "preset.json").write_text(json.dumps({**cfg, "precision": "bf16"}))
    monkeypatch.setattr(sdgic_module, "bf16_is_fast", lambda device="cpu": True)
    bf = SDGIC.from_pretrained(folder)
    assert bf.precision == "bf16"
    assert (bf.decode(enc, steps=3, guidance_scale=3.0) == b).all()
    monkeypatch.setattr(sdgic_module, "bf16_is_fast", lambda device="cpu": False)
    with pytest.warns(UserWarning, match="no native bf16"):
        assert SDGIC.from_pretrained(folder).precision == "fp32"
    (folder / "preset.json").write_text(json.dumps({**cfg, "precision": "half"}))
    with pytest.raises(ValueError, match="precision='half'"):
        SDGIC.from_pretrained(folder)


def test_preset_caption_detail(tiny_preset, codec, tmp_path):
    import json
    import shutil

    assert codec.caption_detail == "full"           # presets without the key
    folder = tmp_path / "p"
    shutil.copytree(tiny_preset, folder)
    cfg = json.loads((folder / "preset.json").read_text())
    (folder / "preset.json").write_text(json.dumps({**cfg, "caption_detail": "layout"}))
    with pytest.raises(ValueError, match="no 'caption_model'"):    # full-caption model
        SDGIC.from_pretrained(folder)
    from benchmark.scene_captions import fit_scene_model
    from codec.streams.caption_coder import CaptionCoder

    CaptionCoder(fit_scene_model("layout", n=500)).save(folder / "layout_model.json")
    (folder / "preset.json").write_text(json.dumps({**cfg, "caption_detail": "layout",
                                                    "caption_model": "layout_model.json"}))
    layout = SDGIC.from_pretrained(folder)
    assert layout.caption_detail == "layout"
    text = generate(3, seed=11)[1].describe("layout")
    assert len(layout.caption_coder.encode(text)) < len(codec.caption_coder.encode(text))
    (folder / "preset.json").write_text(json.dumps({**cfg, "caption_detail": "brief"}))
    with pytest.raises(ValueError, match="preset.json: caption_detail='brief'"):
        SDGIC.from_pretrained(folder)


def test_guidance_interval_guides_only_the_steps_inside_it(tiny_preset, codec, scene, tmp_path):
    import json
    import shutil

    img, caption = scene
    enc = codec.encode(img, caption=caption)
    batches = []
    hook = codec.unet.register_forward_pre_hook(lambda m, a, kw: batches.append(
        (a[0] if a else kw["sample"]).shape[0]), with_kwargs=True)
    try:
        full = codec.decode(enc, steps=4, guidance_scale=3.0)
        assert batches == [2] * 4                      # conditional + unconditional every step
        batches.clear()
        assert (codec.decode(enc, steps=4, guidance_scale=3.0,
                             guidance_interval=(0.0, 1.0)) == full).all()
        none = codec.decode(enc, steps=4, guidance_scale=3.0, guidance_interval=(0.0, 0.0))
        assert batches[4:] == [1] * 4                  # no step inside: one pass per step
        assert (none == codec.decode(enc, steps=4, guidance_scale=1.0)).all()
        batches.clear()
        late = codec.decode(enc, steps=4, guidance_scale=3.0, guidance_interval=(0.0, 0.5))
        assert batches == [1, 1, 2, 2]                 # t = 999, 749 unguided; 500, 250 guided
        assert (late != full).any() and (late != none).any()
    finally:
        hook.remove()
    assert (codec.decode(enc, steps=4, guidance_scale=3.0,
                         guidance_interval=np.array([0.0, 0.5])) == late).all()
    for bad in ((0.5, 0.2), (-0.1, 1.0), (0.0, 1.5), (0.3,), (), "x", "01"):
        with pytest.raises(ValueError, match="guidance_interval"):
            codec.decode(enc, steps=2, guidance_scale=3.0, guidance_interval=bad)
    folder = tmp_path / "p"
    shutil.copytree(tiny_preset, folder)
    cfg = json.loads((folder / "preset.json").read_text())
    (folder / "preset.json").write_text(json.dumps({**cfg, "guidance_interval": [0.0, 0.5]}))
    assert SDGIC.from_pretrained(folder).guidance_interval == (0.0, 0.5)
    (folder / "preset.json").write_text(json.dumps({**cfg, "guidance_interval": [0.9, 0.1]}))
    with pytest.raises(ValueError, match="guidance_interval"):
        SDGIC.from_pretrained(folder)


def test_preset_without_a_caption_stream_refuses_captions(tiny_preset, codec, scene, tmp_path):
    import json
    import shutil

    from sim.source import SourceItem, _caption_for

    assert codec.caption_stream                      # presets without the key send captions
    folder = tmp_path / "p"
    shutil.copytree(tiny_preset, folder)
    cfg = json.loads((folder / "preset.json").read_text())
    (folder / "preset.json").write_text(json.dumps({**cfg, "caption_stream": False}))
    photos = SDGIC.from_pretrained(folder)
    img, caption = scene
    with pytest.raises(ValueError, match="trained without captions"):
        photos.encode(img, caption="a red star")
    assert not photos.encode(img).has("caption")
    item = SourceItem(0, img, caption)              # a folder image with a sidecar caption
    assert _caption_for(photos, item) is None and _caption_for(codec, item) == caption
    (folder / "preset.json").write_text(json.dumps({**cfg, "caption_stream": "no"}))
    with pytest.raises(ValueError, match="caption_stream='no'"):
        SDGIC.from_pretrained(folder)


def test_preset_chooses_how_many_tokens_to_send(tiny_preset, scene, tmp_path):
    import json
    import shutil

    from sim.source import codec_cache_key

    folder = tmp_path / "p"
    shutil.copytree(tiny_preset, folder)
    cfg = json.loads((folder / "preset.json").read_text())
    (folder / "preset.json").write_text(json.dumps({**cfg, "num_tokens": 2}))
    two = SDGIC.from_pretrained(folder)
    img, caption = scene
    enc = two.encode(img, caption=caption)
    assert len(enc.rsrt_tokens) == 2 and enc.stream_bits("rsrt") == 20
    assert len(two.encode(img, caption=caption, num_tokens=4).rsrt_tokens) == 4   # call wins
    assert "num_tokens=2" in codec_cache_key(two)      # the sim never mixes up encodings
    for bad, message in ((-1, "expected an integer >= 0"), ("2", "expected an integer >= 0"),
                         (9, "num_tokens=9 but its rsrt_encoder makes K=4 tokens")):
        (folder / "preset.json").write_text(json.dumps({**cfg, "num_tokens": bad}))
        with pytest.raises(ValueError, match=message):
            SDGIC.from_pretrained(folder)


@pytest.mark.parametrize("name", sorted(p.parents[1].name for p in
                                        Path(__file__).resolve().parents[3].glob(
                                            "codec/weights/*/unet/config.json")))
def test_shipped_presets_load_with_a_model_card_and_small_safetensors(name):
    from codec.sdgic import WEIGHTS

    folder = WEIGHTS / name
    codec = SDGIC.from_pretrained(name)
    assert codec.preset == name and codec.resolution == 64
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix in (".pt", ".pth", ".pkl", ".bin", ".ckpt")]
    assert sum(p.stat().st_size for p in files) < 40 * 2 ** 20
    card = json.loads((folder / "model_card.json").read_text())
    assert card["preset"] == name and card["status"] in ("in-progress", "complete")
    for stage in card["stages"].values():
        assert {"training_command", "commit", "data", "steps"} <= set(stage)
