import pytest
import torch

from codec.dpcd.rsrt import FSQ, RSRTEmbedding, RSRTEncoder, code_health


def test_fsq_codes_round_trip_and_bits():
    fsq = FSQ((8, 5, 5, 5))
    assert fsq.codebook_size == 1000 and fsq.bits == 10
    z = torch.randn(64, 6, 4) * 3
    q, code = fsq(z)
    assert q.shape == z.shape and code.shape == (64, 6) and code.dtype == torch.long
    assert code.min() >= 0 and code.max() < 1000
    torch.testing.assert_close(fsq.decode(code), q)
    assert q.abs().max() <= 1.0


def test_fsq_straight_through_gradient():
    fsq = FSQ((5, 5))
    z = torch.randn(10, 2, requires_grad=True)
    fsq(z)[0].sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_encoder_tokens_spread_over_codes_at_init():
    torch.manual_seed(0)
    enc = RSRTEncoder(num_tokens=4, width=16, text_dim=8).eval()
    x, h = torch.rand(32, 3, 32, 32), torch.rand(32, 3, 32, 32)
    codes = enc.encode(x, h, torch.randn(32, 8))
    assert codes.shape == (32, 4)
    health = code_health(codes, enc.fsq.codebook_size)
    # the prototype's failure mode was one code per token; a fresh encoder must not start there
    assert min(health["distinct"]) > 4


def test_embedding_masks_lost_tokens():
    emb = RSRTEmbedding(num_tokens=4, dim=16)
    codes = torch.randint(0, 1000, (2, 4))
    present = torch.tensor([[True, False, True, False], [False] * 4])
    e = emb(codes=codes, present=present)
    assert e.shape == (2, 4, 16)
    # a lost token's embedding is the mask + its position, whatever its code said
    other = emb(codes=torch.zeros_like(codes), present=present)
    torch.testing.assert_close(e[~present], other[~present])
    assert not torch.allclose(e[present], other[present])


def test_range_penalty_and_capped_gain():
    import torch

    from codec.dpcd.rsrt import RSRTEncoder, range_penalty

    assert range_penalty(torch.tensor([0.0, 2.0, -2.5])) == 0
    assert range_penalty(torch.tensor([3.5, -3.5])) == pytest.approx(1.0)
    enc = RSRTEncoder(num_tokens=2, width=16, init_gain=3.0)
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        a = enc(x, x, torch.zeros(2, 384))
        enc.gain.fill_(50.0)                 # a gain grown in training is capped at 3
        b = enc(x, x, torch.zeros(2, 384))
    torch.testing.assert_close(a, b)


def test_attribute_head_teaches_the_tokens_what_the_caption_leaves_out():
    """Tokens + head trained on the attribute loss alone learn to carry each scene's shapes
    (which the null caption does not state): the loss falls and the head reads shapes back."""
    from benchmark.captioner import SceneCaptioner, attribute_targets, captioner_loss
    from benchmark.scene_dataset import render_scenes
    from training.token_head import TokenAttributeHead

    torch.manual_seed(0)
    images, _ = render_scenes(16, seed=11, size=32)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    targets = attribute_targets(SceneCaptioner().model(x))
    enc = RSRTEncoder(num_tokens=8, width=16, text_dim=8)
    head = TokenAttributeHead(num_tokens=8, token_dim=4, text_dim=8, num_words=9, width=128)
    logits = head(torch.zeros(2, 8, 4), torch.zeros(2, 8))
    assert logits["present"].shape == (2, 9) and logits["shape"].shape == (2, 9, 8)
    assert logits["texture"].shape == (2, 9, 4) and logits["background_word"].shape == (2, 9)
    opt = torch.optim.Adam(list(enc.parameters()) + list(head.parameters()), lr=1e-3)
    caption = torch.zeros(16, 8)
    losses = []
    for _ in range(200):
        q, _ = enc.quantize(enc(x, x * 0.5, caption))
        loss = captioner_loss(head(q, caption), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) < 0.5 * sum(losses[:5])
    with torch.no_grad():
        shape = head(enc.quantize(enc(x, x * 0.5, caption))[0], caption)["shape"].argmax(-1)
    seen = targets["shape"] >= 0
    assert (shape == targets["shape"])[seen].float().mean() > 0.6     # chance is 1/8


def test_scene_backbone_takes_the_captioners_weights():
    from benchmark.captioner import CaptionerNet

    torch.manual_seed(0)
    cap = CaptionerNet(width=8)
    enc = RSRTEncoder(num_tokens=4, width=16, text_dim=8, backbone="scene", scene_width=8)
    assert enc.scene.state_dict().keys() == cap.features.state_dict().keys()
    enc.load_scene_weights(cap.features)
    for k, v in cap.features.state_dict().items():
        torch.testing.assert_close(enc.scene.state_dict()[k], v)
    x, h = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    z = enc(x, h, torch.zeros(2, 8))
    assert z.shape == (2, 4, 4)
    # the source's scene features reach the tokens: changing them changes the tokens
    with torch.no_grad():
        enc.scene[0][0].weight.mul_(2)
    assert not torch.allclose(enc(x, h, torch.zeros(2, 8)), z)
    with pytest.raises(ValueError, match="backbone='scene'"):
        RSRTEncoder(num_tokens=4, width=16).load_scene_weights(cap.features)
    with pytest.raises(ValueError, match="backbone='vit'"):
        RSRTEncoder(backbone="vit")


def test_cell_tied_tokens_read_their_own_cell_only():
    torch.manual_seed(0)
    enc = RSRTEncoder(num_tokens=4, width=16, text_dim=8, cells=2).eval()
    x, h, c = torch.rand(1, 3, 128, 128), torch.rand(1, 3, 128, 128), torch.zeros(1, 8)
    y = x.clone()
    y[..., :16, :16] = 1 - y[..., :16, :16]      # change the top-left corner of cell 0
    with torch.no_grad():
        a, b = enc(x, h, c), enc(y, h, c)
    changed = (a - b).abs().amax(-1)[0] > 1e-6
    assert changed.tolist() == [True, False, False, False]
    with pytest.raises(ValueError, match="num_tokens=8"):
        RSRTEncoder(num_tokens=8, cells=2)


def test_code_health_sees_copies_within_an_image():
    same = torch.tensor([[3, 3, 3, 3], [7, 7, 7, 7]])
    assert code_health(same, 16)["within_image"] == 1.0
    assert code_health(same, 16)["distinct"] == [2, 2, 2, 2]     # blind to it slot by slot
    assert code_health(torch.tensor([[0, 1, 2, 2]]), 16)["within_image"] == 3.0


def test_presets_saved_before_the_backbone_option_load_as_conv(tmp_path):
    import json

    enc = RSRTEncoder(num_tokens=2, width=16, text_dim=8)
    enc.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    for k in ("backbone", "scene_width", "cells"):
        cfg.pop(k)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    old = RSRTEncoder.from_pretrained(tmp_path)
    assert old.config.backbone == "conv" and old.config.cells == 0
    x = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(old(x, x, torch.zeros(1, 8)), enc(x, x, torch.zeros(1, 8)))
