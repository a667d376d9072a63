"""Caption stream: exact round trips (scene captions and arbitrary Unicode), bits per caption,
malformed input."""

import random

import numpy as np
import pytest

from benchmark.scene_captions import scene_captions
from codec.errors import CorruptStreamError
from codec.streams.caption_coder import CaptionCoder, detokenize, fit_model, tokenize

# The shipped model is fitted on scene seed 7001; these seeds are held out.
HELD_OUT_SEED = 2002


@pytest.fixture(scope="module")
def coder():
    return CaptionCoder.load()


@pytest.fixture(scope="module")
def held_out():
    return scene_captions(1000, HELD_OUT_SEED)


def test_scene_captions_round_trip(coder, held_out):
    for text in held_out:
        assert coder.decode(coder.encode(text)) == text


def test_median_bits_per_scene_caption(coder, held_out):
    bits = np.array([coder.bits(t) for t in held_out])
    assert np.median(bits) <= 60, f"median {np.median(bits)} bits"
    # far below the raw text and within a few bits of the model's information content
    assert bits.mean() < 0.1 * np.mean([8 * len(t.encode()) for t in held_out])
    ideal = np.mean([coder.ideal_bits(t) for t in held_out[:200]])
    assert bits[:200].mean() < ideal + 8


def test_encoding_is_stable(coder):
    # stored captions must stay decodable: this pins the shipped model and the coder
    text = "a large red striped star at the top left on a grassy background"
    data = coder.encode(text)
    assert coder.encode(text) == data and CaptionCoder.load().encode(text) == data
    assert len(data) <= 3


_ALPHABETS = [
    "abcdefghijklmnopqrstuvwxyz",
    "ABCXYZ ,.;:!?'\"-()\n\t\r",
    " ,",
    "éüßçñøåÆ",
    "中文字符日本語한국어",
    "😀🚀🌍👍🏽‍♀️",  # emoji, skin-tone modifier, ZWJ, variation selector
    "\x00\x01\x7f\u200b\ufeff\U0010ffff",
    "\u0301\u0308",  # combining marks
]


def _random_texts(n, seed=0):
    rng = random.Random(seed)
    words = "a small large red star ring at the top left on plain background and".split()
    out = ["", " ", "  ", ",", ", ,", "a,b", "a ,b", " a", "a ", "a  b", "a\nb", "\x00",
           "A Small Red Star", "a small magenta star at the top left on a plain background",
           "a small red star, , on a plain background", "😀", "a 😀 star", "<esc>", "</s>",
           "<s> </s> <esc>", "a" * 300]
    for _ in range(n):
        if rng.random() < 0.3:  # caption-like word salad, sometimes with odd words
            toks = [rng.choice(words) if rng.random() < 0.8 else
                    "".join(rng.choice(rng.choice(_ALPHABETS)) for _ in range(rng.randint(1, 6)))
                    for _ in range(rng.randint(0, 15))]
            out.append(rng.choice([" ", ", ", " "]).join(toks))
        else:
            alpha = "".join(rng.sample(_ALPHABETS, rng.randint(1, 3)))
            out.append("".join(rng.choice(alpha) for _ in range(rng.randint(0, 40))))
    return out


def test_arbitrary_unicode_round_trips(coder):
    for text in _random_texts(600):
        data = coder.encode(text)
        assert isinstance(data, bytes) and len(data) >= 1
        assert coder.decode(data) == text, repr(text)


def test_out_of_vocabulary_word_is_cheaper_than_bytes(coder):
    text = "a small magenta star at the top left on a plain background"
    assert coder.decode(coder.encode(text)) == text
    assert coder.bits(text) < 0.5 * 8 * len(text)


def test_tokenize_only_when_exact():
    assert tokenize("a red star, a blue ring") == ["a", "red", "star", ",", "a", "blue", "ring"]
    assert tokenize("") == []
    for odd in ("a,b", "a  b", " a", "a ", "a,,b"):
        assert tokenize(odd) is None
    toks = ["x", ",", ",", "y"]
    assert tokenize(detokenize(toks)) == toks
    assert tokenize("a\nb c") == ["a\nb", "c"]  # any non-space, non-comma run is one word


@pytest.mark.timeout(60)
def test_malformed_bytes_raise_value_error_or_decode(coder):
    rng = np.random.default_rng(0)
    valid = coder.encode("a small red star at the top left on a plain background")
    cases = [b"", b"\x00", b"\xff" * 64, valid[:-1], valid + b"\xff"]
    cases += [rng.integers(0, 256, rng.integers(1, 40)).astype(np.uint8).tobytes()
              for _ in range(1500)]
    raised = 0
    for data in cases:
        try:
            out = coder.decode(data)
        except CorruptStreamError as e:
            assert "caption data" in str(e)
            raised += 1
        else:
            assert isinstance(out, str)
    assert raised > 0.9 * len(cases)
    # empty data and trailing bytes never pass as a caption. (A truncated caption may be
    # another caption's exact encoding: there is no checksum; the container's CRC32 is one.)
    for data in cases[:3] + cases[4:5]:
        with pytest.raises(CorruptStreamError, match="caption data"):
            coder.decode(data)


def test_argument_errors(coder, tmp_path):
    with pytest.raises(TypeError, match="text must be str"):
        coder.encode(b"bytes")
    with pytest.raises(TypeError, match="data must be bytes"):
        coder.decode("text")
    with pytest.raises(ValueError, match="lone surrogate"):
        coder.encode("a \ud800 b")
    with pytest.raises(FileNotFoundError, match="--refit"):
        CaptionCoder.load(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="fit_model"):
        CaptionCoder({"format": "other"})
    with pytest.raises(ValueError, match="format 'list'"):
        CaptionCoder([])
    with pytest.raises(ValueError, match="order=0"):
        fit_model(["a b"], order=0)


def test_fit_save_load(tmp_path):
    train = scene_captions(300, 7001)
    small = CaptionCoder(fit_model(train, order=2))
    path = small.save(tmp_path / "m.json")
    again = CaptionCoder.load(path)
    text = scene_captions(1, HELD_OUT_SEED)[0]
    assert again.encode(text) == small.encode(text)
    assert again.decode(small.encode(text)) == text


def test_layout_captions_fit_their_own_model():
    """A preset trained on layout captions ships a model fitted to them: shorter streams."""
    layout_train = scene_captions(300, 7001, detail="layout")
    coder = CaptionCoder(fit_model(layout_train))
    held_out = scene_captions(50, HELD_OUT_SEED, detail="layout")
    bits = [8 * len(coder.encode(t)) for t in held_out]
    assert all(coder.decode(coder.encode(t)) == t for t in held_out)
    full = CaptionCoder.load()
    full_bits = [8 * len(full.encode(t)) for t in scene_captions(50, HELD_OUT_SEED)]
    assert np.mean(bits) < np.mean(full_bits)
