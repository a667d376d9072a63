"""Captioners: a tiny random BLIP folder through ``TransformersCaptioner``, the shipped scene
captioner on fresh scenes (exact captions, every caption codable, the attributes it reads),
sidecar text, none."""

import numpy as np
import pytest
import torch

from benchmark.captioner import (SceneCaptioner, TransformersCaptioner, make_captioner,
                                 sidecar_caption)

FRESH_SEED = 5007  # neither the captioner's training nor its model-card eval scenes


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory):
    """A local BLIP image-captioning folder: random tiny vision and text towers, the offline
    MiniLM BERT WordPiece tokenizer (plus BLIP's [DEC] bos token) and a 32-px image processor."""
    import torch
    from transformers import (BertTokenizer, BlipConfig, BlipForConditionalGeneration,
                              BlipImageProcessor, BlipProcessor)

    from codec.text_encoder import minilm_path

    tok = BertTokenizer.from_pretrained(minilm_path())
    tok.add_special_tokens({"bos_token": "[DEC]"})  # BLIP's decoder start token
    config = BlipConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2, image_size=32, patch_size=8, projection_dim=32),
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=64,
                         projection_dim=32, bos_token_id=tok.bos_token_id,
                         pad_token_id=tok.pad_token_id, sep_token_id=tok.sep_token_id),
        projection_dim=32, image_text_hidden_size=32)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny_blip")
    BlipForConditionalGeneration(config).eval().save_pretrained(folder)
    image_processor = BlipImageProcessor(size={"height": 32, "width": 32})
    BlipProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(folder)
    return folder


def test_transformers_captioner_from_local_blip_folder(tiny_blip):
    cap = make_captioner(str(tiny_blip))
    assert isinstance(cap, TransformersCaptioner)
    cap.max_new_tokens = 5
    image = np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8)
    text = cap(image)
    assert isinstance(text, str)
    assert cap(image) == text  # greedy decoding: deterministic


def test_transformers_captioner_needs_config_json(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        make_captioner(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="config.json"):
        TransformersCaptioner(tmp_path)


def test_scene_captioner_on_fresh_scenes():
    from benchmark.scene_dataset import render_scenes
    from codec.streams.caption_coder import CaptionCoder

    images, scenes = render_scenes(50, seed=FRESH_SEED, size=64)
    captioner = make_captioner("scene")
    assert isinstance(captioner, SceneCaptioner)
    caps = captioner(images)
    assert isinstance(caps, list) and len(caps) == 50
    assert isinstance(captioner(images[0]), str) and captioner(images[0]) == caps[0]
    exact = np.mean([c == s.caption for c, s in zip(caps, scenes)])
    assert exact >= 0.8, f"exact-caption rate {exact:.2f} on 50 fresh scenes"
    coder = CaptionCoder.load()
    for c in caps:
        assert coder.decode(coder.encode(c)) == c
    layout = SceneCaptioner(detail="layout")
    assert layout(images) == [s.describe("layout") for s in captioner.scenes(images)]
    assert captioner(images[:3], detail="layout") == layout(images[:3])
    concise = captioner(images, detail="concise")
    assert concise == [s.describe("concise") for s in captioner.scenes(images)]
    exact = np.mean([c == s.describe("concise") for c, s in zip(concise, scenes)])
    assert exact >= 0.9, f"exact concise-caption rate {exact:.2f} on 50 fresh scenes"
    with pytest.raises(ValueError, match="caption detail"):
        SceneCaptioner(detail="short")


def test_attribute_targets_read_from_the_captioner_match_the_scenes():
    from benchmark.captioner import attribute_targets, captioner_targets
    from benchmark.scene_dataset import render_scenes

    images, scenes = render_scenes(40, seed=FRESH_SEED, size=64)
    captioner = SceneCaptioner()
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    got, truth = attribute_targets(captioner.model(x)), captioner_targets(scenes)
    assert torch.equal(got["present"], truth["present"])
    for k in ("shape", "colour", "size", "texture"):
        assert torch.equal(got[k] >= 0, truth[k] >= 0)          # -100 exactly where empty
        agree = (got[k] == truth[k])[truth[k] >= 0].float().mean()
        assert agree >= 0.9, f"{k}: the captioner agrees with the scenes on {agree:.2f}"


def test_sidecar_caption_reads_image_txt(tmp_path):
    img = tmp_path / "IMAGE.png"
    img.write_bytes(b"")
    assert sidecar_caption(img) is None
    (tmp_path / "IMAGE.txt").write_text("  a red circle on grass\n", encoding="utf-8")
    assert sidecar_caption(img) == "a red circle on grass"


def test_make_captioner_none():
    assert make_captioner("none") is None
    assert make_captioner(None) is None
