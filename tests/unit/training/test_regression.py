import torch

from benchmark.scenes import generate
from codec.text_encoder import default_text_encoder
from training.regression import RegressionDecoder, train_regression


def test_regression_decoder_trains_saves_and_reads_every_stream(tmp_path):
    card = train_regression(tmp_path / "reg", steps=8, batch_size=4, tiny=True, size=16,
                            threads=1, unquantized_steps=4)
    assert card["steps"] == 8 and "code_health_last_160_images" in card
    assert "tokens distinct" in (tmp_path / "reg" / "train.log").read_text()
    model = RegressionDecoder.load(tmp_path / "reg")
    te = default_text_encoder()
    img = torch.from_numpy(generate(0, seed=1, size=16)[0]).permute(2, 0, 1)[None].float() / 255
    cond, mask = te.tokens(["a red star"])
    codes = model.rsrt_encoder.encode(img, img, te.sentence(["a red star"]))
    assert codes.shape == (1, 8) and codes.dtype == torch.long
    with torch.no_grad():
        outs = {}
        for name, hp, present in (("all", True, True), ("no_hci", False, True),
                                  ("no_tokens", True, False)):
            tok = model.rsrt_embedding(codes=codes, present=torch.full((1, 8), present))
            outs[name] = model(img, torch.tensor([hp]), cond, mask, tok)
            assert outs[name].shape == (1, 3, 16, 16)
            assert 0 <= outs[name].min() and outs[name].max() <= 1
    assert not torch.equal(outs["all"], outs["no_hci"])
    assert not torch.equal(outs["all"], outs["no_tokens"])
