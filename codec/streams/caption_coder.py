"""Lossless caption text coding: a static word n-gram model driving an exact arithmetic coder.

The caption stream is the UTF-8 caption entropy-coded with a *static* (non-adaptive) model
fitted once on scene captions, so a 20-word caption costs a few bytes instead of the ~100 that
zlib or plain UTF-8 need.

Model
    Words (and the comma) are tokens. Each token is coded with an interpolated n-gram model
    (order 3 by default: the previous two tokens are the context, backing off to shorter
    contexts), ending with an end-of-caption token. A word outside the vocabulary is an escape
    token followed by its UTF-8 bytes under a static byte model. Text that the word layout
    cannot reproduce exactly (double spaces, ``"a,b"``, newlines …) is coded whole as bytes.
    The first coded symbol says which of the two modes follows, so *any* UTF-8 text
    round-trips exactly; scene captions pay about 0.0004 bits for that flag.

Coder
    A 32-bit integer arithmetic coder (Witten–Neal–Cleary with underflow bits) written here
    rather than CompressAI's rANS (``compressai.ans``): rANS flushes its 32-bit state, which
    costs 4 bytes per message, as much as a whole scene caption, while this coder terminates
    with one bit. The decoder also needs per-symbol context switches and a decoder that never
    reads past malformed input, both simpler here. Every probability after the mode flag is
    at most ``1 - 1/64`` and the decoder stops 96 bits past the end of its input, so decoding any bytes
    ends quickly: with the decoded text or a ``ValueError``. Decoding re-encodes the text and
    accepts only the exact encoder output, so trailing or altered bytes are rejected too
    (there is no checksum: the container's CRC32 guards against corruption).

Bits per caption are ``8 * len(encode(text))``: whole bytes, as the container carries them.
"""

from __future__ import annotations

import bisect
import functools
import json
import math
import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

from codec.errors import CorruptStreamError

__all__ = ["CaptionCoder", "fit_model", "tokenize",
           "detokenize", "DEFAULT_MODEL_PATH"]

DEFAULT_MODEL_PATH = Path(__file__).with_name("caption_model.json")
MODEL_FORMAT = "sdgic-caption-ngram"

# Quantized probability tables: every table sums to TOTAL, every symbol has frequency >= 1 and
# none exceeds MAX_FREQ (so each coded symbol narrows the interval and decoding terminates).
_TOTAL_BITS = 16
TOTAL = 1 << _TOTAL_BITS
MAX_FREQ = TOTAL - TOTAL // 64
# Mode flag (first symbol): word model or whole-text bytes.
_MODE_FREQ = (TOTAL - 16, 16)
_MODE_WORDS, _MODE_BYTES = 0, 1
# Byte model: symbols 0..255 are bytes, 256 ends the byte string.
_BYTE_END = 256
_BYTE_FLOOR = 8  # count given to every byte value on top of the fitted counts (×TOTAL/sum)
# The decoder may read this many zero bits past the end of its input (32 fill its register).
_MAX_PAD_BITS = 96

_BOS, _EOS, _ESC = "<s>", "</s>", "<esc>"
_TOKEN_RE = re.compile(r"[^ ,]+|,")


# ---------------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------------


def tokenize(text: str) -> list[str] | None:
    """Split ``text`` into word and comma tokens, or ``None`` if :func:`detokenize` would not
    give back ``text`` exactly (then the caption is coded as bytes)."""
    tokens = _TOKEN_RE.findall(text)
    return tokens if detokenize(tokens) == text else None


def detokenize(tokens: Sequence[str]) -> str:
    """Join tokens with single spaces; a comma attaches to the word before it."""
    out = []
    for i, t in enumerate(tokens):
        out.append(t if (i == 0 or t == ",") else " " + t)
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# Fitting and quantizing the static model
# ---------------------------------------------------------------------------------------------


def fit_model(captions: Iterable[str], order: int = 3, alpha: float = 1.0,
              escape_rate: float = 1e-3, source: str = "") -> dict:
    """Count n-grams (orders 1 … ``order``) and bytes of ``captions``: a JSON-able model dict.

    ``alpha`` is the interpolation weight given to the shorter context; ``escape_rate`` the
    unigram share reserved for out-of-vocabulary words.
    """
    if order < 1:
        raise ValueError(f"order={order} must be >= 1 (1: unigram, 2: bigram, 3: trigram)")
    if alpha <= 0:
        raise ValueError(f"alpha={alpha} must be > 0")
    ngrams: dict[int, Counter] = {k: Counter() for k in range(1, order + 1)}
    byte_counts = [0] * 257
    n_captions = 0
    for text in captions:
        tokens = tokenize(text)
        if tokens is None:
            continue
        n_captions += 1
        seq = [_BOS] * (order - 1) + tokens + [_EOS]
        for i in range(order - 1, len(seq)):
            for k in range(1, order + 1):
                ngrams[k][" ".join(seq[i - k + 1:i + 1])] += 1
        for t in tokens:
            for b in t.encode("utf-8"):
                byte_counts[b] += 1
            byte_counts[_BYTE_END] += 1
    if n_captions == 0:
        raise ValueError("captions holds no caption in the word layout; pass scene captions")
    vocab = sorted(k for k in ngrams[1] if k != _EOS)
    return {
        "format": MODEL_FORMAT,
        "version": 1,
        "source": source,
        "captions": n_captions,
        "order": order,
        "alpha": alpha,
        "escape_rate": escape_rate,
        "vocab": vocab,
        "ngrams": {str(k): dict(sorted(c.items())) for k, c in ngrams.items()},
        "bytes": byte_counts,
    }


def _quantize(probs: Sequence[float]) -> list[int]:
    """Probabilities (sum 1) → integer frequencies: sum TOTAL, each in [1, MAX_FREQ]."""
    n = len(probs)
    if not 2 <= n <= TOTAL // 64:
        raise ValueError(f"alphabet of {n} symbols; expected 2 … {TOTAL // 64}")
    spare = TOTAL - n
    freq = [1 + int(p * spare) for p in probs]
    order = sorted(range(n), key=lambda i: -probs[i])
    i = 0
    while sum(freq) < TOTAL:  # hand out the rounding remainder, most probable first
        freq[order[i % n]] += 1
        i += 1
    top = order[0]
    if freq[top] > MAX_FREQ:  # cap the most probable symbol; spread the excess
        excess, freq[top] = freq[top] - MAX_FREQ, MAX_FREQ
        for j in range(excess):
            freq[order[1 + j % (n - 1)]] += 1
    return freq


def _cumulative(freq: Sequence[int]) -> list[int]:
    cum = [0]
    for f in freq:
        cum.append(cum[-1] + f)
    return cum


# ---------------------------------------------------------------------------------------------
# Arithmetic coder (exact integer arithmetic)
# ---------------------------------------------------------------------------------------------

_FULL = 1 << 32
_MASK = _FULL - 1
_HALF = 1 << 31
_QUARTER = 1 << 30


class _Encoder:
    """Arithmetic encoder; ``encode(cum, s)`` codes symbol ``s`` of cumulative table ``cum``."""

    def __init__(self):
        self.low, self.high, self.pending = 0, _MASK, 0
        self.bits: list[int] = []

    def encode(self, cum: Sequence[int], s: int) -> None:
        rng = self.high - self.low + 1
        total = cum[-1]
        self.high = self.low + rng * cum[s + 1] // total - 1
        self.low = self.low + rng * cum[s] // total
        while True:
            if self.high < _HALF:
                self._emit(0)
            elif self.low >= _HALF:
                self._emit(1)
                self.low -= _HALF
                self.high -= _HALF
            elif self.low >= _QUARTER and self.high < 3 * _QUARTER:
                self.pending += 1
                self.low -= _QUARTER
                self.high -= _QUARTER
            else:
                break
            self.low <<= 1
            self.high = (self.high << 1) | 1

    def _emit(self, bit: int) -> None:
        self.bits.append(bit)
        self.bits.extend([1 - bit] * self.pending)
        self.pending = 0

    def finish(self) -> bytes:
        # low < HALF <= high here, and HALF is the fixed point of the underflow map, so the code
        # value "emitted bits, 1, then zeros" lies in the final interval whatever is pending.
        # The decoder pads with zeros, so the zeros are not written.
        bits = self.bits + [1]
        bits += [0] * (-len(bits) % 8)
        return bytes(int("".join(map(str, bits[i:i + 8])), 2) for i in range(0, len(bits), 8))


class _Decoder:
    """Arithmetic decoder over ``data``; reads zeros past the end, at most ``_MAX_PAD_BITS``."""

    def __init__(self, data: bytes):
        self.data = data
        self.nbits = 8 * len(data)
        self.pos = 0
        self.low, self.high, self.code = 0, _MASK, 0
        for _ in range(32):
            self.code = (self.code << 1) | self._bit()

    def _bit(self) -> int:
        pos = self.pos
        self.pos += 1
        if pos < self.nbits:
            return (self.data[pos >> 3] >> (7 - (pos & 7))) & 1
        if pos >= self.nbits + _MAX_PAD_BITS:
            raise CorruptStreamError(f"caption data of {len(self.data)} bytes is malformed: it ends "
                             "before the end-of-caption symbol (truncated or not a caption)")
        return 0

    def decode(self, cum: Sequence[int]) -> int:
        rng = self.high - self.low + 1
        total = cum[-1]
        value = ((self.code - self.low + 1) * total - 1) // rng
        s = bisect.bisect_right(cum, value) - 1
        self.high = self.low + rng * cum[s + 1] // total - 1
        self.low = self.low + rng * cum[s] // total
        while True:
            if self.high < _HALF:
                pass
            elif self.low >= _HALF:
                self.low -= _HALF
                self.high -= _HALF
                self.code -= _HALF
            elif self.low >= _QUARTER and self.high < 3 * _QUARTER:
                self.low -= _QUARTER
                self.high -= _QUARTER
                self.code -= _QUARTER
            else:
                break
            self.low <<= 1
            self.high = (self.high << 1) | 1
            self.code = (self.code << 1) | self._bit()
        return s


# ---------------------------------------------------------------------------------------------
# The coder
# ---------------------------------------------------------------------------------------------


class CaptionCoder:
    """Lossless caption ↔ bytes with a static n-gram model (see the module docstring).

    Parameters
    ----------
    model : dict
        A model from :func:`fit_model` (or its JSON file, through :meth:`load`).

    Example
    -------
    >>> coder = CaptionCoder.load()
    >>> data = coder.encode("a small red star at the top left on a plain background")
    >>> coder.decode(data)
    'a small red star at the top left on a plain background'
    """

    def __init__(self, model: dict):
        fmt = model.get("format") if isinstance(model, dict) else type(model).__name__
        if fmt != MODEL_FORMAT:
            raise ValueError(f"model is not a caption model (format {fmt!r}); expected a dict "
                             f"of format {MODEL_FORMAT!r} from fit_model() or load()")
        self.model = model
        self.order = int(model["order"])
        self.vocab = list(model["vocab"])
        self.symbols = self.vocab + [_EOS, _ESC]  # word-model alphabet
        self.index = {w: i for i, w in enumerate(self.symbols)}
        self._eos, self._esc = len(self.vocab), len(self.vocab) + 1
        self._tables = self._build_tables(model)
        counts = [c + _BYTE_FLOOR * sum(model["bytes"]) / TOTAL + 1e-9 for c in model["bytes"]]
        s = sum(counts)
        self._bytes = _cumulative(_quantize([c / s for c in counts]))
        self._mode = _cumulative(_MODE_FREQ)

    # -- model tables ---------------------------------------------------------------------

    def _build_tables(self, model: dict) -> dict[tuple, list[int]]:
        """Cumulative tables for every context seen in fitting (tuples of tokens, any length
        below ``order``), from interpolated probabilities."""
        order, alpha, esc = self.order, float(model["alpha"]), float(model["escape_rate"])
        ngrams = {int(k): v for k, v in model["ngrams"].items()}
        n = len(self.symbols)
        # context (tuple) → {symbol index: count}, and its total
        ctx_counts: dict[tuple, dict[int, int]] = {}
        for k in range(1, order + 1):
            for key, c in ngrams.get(k, {}).items():
                toks = tuple(key.split(" "))
                ctx, w = toks[:-1], toks[-1]
                ctx_counts.setdefault(ctx, {})[self.index[w]] = c
        uni = ctx_counts.get((), {})
        probs: dict[tuple, list[float]] = {}
        base = [(uni.get(i, 0) + 1.0) for i in range(n)]  # add-one unigram
        base[self._esc] = 0.0
        sb = sum(base)
        p1 = [(1 - esc) * b / sb for b in base]
        p1[self._esc] = esc
        probs[()] = p1
        for length in range(1, order):
            for ctx, counts in ctx_counts.items():
                if len(ctx) != length:
                    continue
                lower = probs[ctx[1:]] if ctx[1:] in probs else probs[()]
                tot = sum(counts.values())
                probs[ctx] = [(counts.get(i, 0) + alpha * lower[i]) / (tot + alpha)
                              for i in range(n)]
        return {ctx: _cumulative(_quantize(p)) for ctx, p in probs.items()}

    def _table(self, history: list[str]) -> list[int]:
        """The table of the longest seen suffix of the last ``order - 1`` tokens."""
        ctx = tuple(history[len(history) - (self.order - 1):]) if self.order > 1 else ()
        while ctx not in self._tables:
            ctx = ctx[1:]
        return self._tables[ctx]

    # -- public API -----------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path | None = None) -> "CaptionCoder":
        """Load a model JSON (default: the shipped ``codec/streams/caption_model.json``)."""
        if path is None:
            return _default_coder()
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"path={str(path)!r}: no caption model there; fit one with "
                                    "`python experiments/caption_bits.py --refit`")
        return cls(json.loads(path.read_text()))

    @property
    def is_default(self) -> bool:
        """Whether this is the shipped model (``DEFAULT_MODEL_PATH``)."""
        return self is _default_coder() or self.model == _default_coder().model

    def save(self, path: str | Path) -> Path:
        """Write the model as compact JSON to ``path``."""
        path = Path(path)
        path.write_text(json.dumps(self.model, separators=(",", ":")) + "\n")
        return path

    def encode(self, text: str) -> bytes:
        """Caption (any ``str`` of valid Unicode) → bytes; ``decode`` returns it exactly."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}; decode bytes first")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValueError(f"text holds a lone surrogate at index {e.start} and has no UTF-8 "
                             "form; pass valid Unicode text") from None
        enc = _Encoder()
        self._encode_into(enc, text)
        return enc.finish()

    def _encode_bytes(self, enc: _Encoder, raw: bytes) -> None:
        for b in raw:
            enc.encode(self._bytes, b)
        enc.encode(self._bytes, _BYTE_END)

    def decode(self, data: bytes) -> str:
        """Bytes from :meth:`encode` → the caption. Malformed data raises ``ValueError``."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes, got {type(data).__name__}")
        data = bytes(data)
        text = self._decode(_Decoder(data))
        # Only the encoder's own output is accepted: trailing or altered bytes that still
        # decode to some text are caught here (the encoding of a text is unique).
        if self.encode(text) != data:
            raise CorruptStreamError(f"caption data of {len(data)} bytes is malformed: it decodes to "
                             f"{text[:40]!r} but is not that text's encoding (trailing or "
                             "corrupt bytes)")
        return text

    def _decode(self, dec: _Decoder) -> str:
        if dec.decode(self._mode) == _MODE_BYTES:
            return self._utf8(self._decode_bytes(dec), "caption bytes")
        tokens, history = [], [_BOS] * (self.order - 1)
        while True:
            s = dec.decode(self._table(history))
            if s == self._eos:
                break
            if s == self._esc:
                word = self._utf8(self._decode_bytes(dec), "escaped word")
                if not word or _TOKEN_RE.fullmatch(word) is None:
                    raise CorruptStreamError(f"caption data is malformed: escaped word {word!r} is not "
                                     "a single word")
                tokens.append(word)
                history.append(_ESC)
            else:
                tokens.append(self.symbols[s])
                history.append(self.symbols[s])
        return detokenize(tokens)

    def _decode_bytes(self, dec: _Decoder) -> bytes:
        out = bytearray()
        while (b := dec.decode(self._bytes)) != _BYTE_END:
            out.append(b)
        return bytes(out)

    @staticmethod
    def _utf8(raw: bytes, what: str) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise CorruptStreamError(f"caption data is malformed: {what} is not UTF-8 ({e.reason} at "
                             f"byte {e.start})") from None

    def bits(self, text: str) -> int:
        """Bits the caption stream takes for ``text``: ``8 * len(encode(text))``."""
        return 8 * len(self.encode(text))

    def ideal_bits(self, text: str) -> float:
        """Information content of ``text`` under the quantized model (bits, no rounding)."""
        total = 0.0
        enc = _Probe()
        self._encode_into(enc, text)
        for p in enc.probs:
            total -= math.log2(p)
        return total

    def _encode_into(self, enc, text: str) -> None:
        # same symbol sequence as encode(), for a probe that records probabilities
        tokens = tokenize(text)
        if tokens is None:
            enc.encode(self._mode, _MODE_BYTES)
            self._encode_bytes(enc, text.encode("utf-8"))
            return
        enc.encode(self._mode, _MODE_WORDS)
        history = [_BOS] * (self.order - 1)
        for t in tokens:
            s = self.index.get(t)
            if s is None or s >= self._eos:
                enc.encode(self._table(history), self._esc)
                self._encode_bytes(enc, t.encode("utf-8"))
                history.append(_ESC)
            else:
                enc.encode(self._table(history), s)
                history.append(t)
        enc.encode(self._table(history), self._eos)


class _Probe:
    """Stands in for ``_Encoder`` to record each coded symbol's probability."""

    def __init__(self):
        self.probs: list[float] = []

    def encode(self, cum, s):
        self.probs.append((cum[s + 1] - cum[s]) / cum[-1])


@functools.lru_cache(maxsize=1)
def _default_coder() -> CaptionCoder:
    if not DEFAULT_MODEL_PATH.is_file():
        raise FileNotFoundError(f"{DEFAULT_MODEL_PATH} is missing; fit it with "
                                "`python experiments/caption_bits.py --refit`")
    return CaptionCoder(json.loads(DEFAULT_MODEL_PATH.read_text()))
