"""Typed errors of the codec's streams: what a receiver may catch without hiding bugs.

``StreamError`` (a ``ValueError``, so older callers keep working) is raised for bytes that
cannot be decoded as sent: a corrupt or truncated stream (``CorruptStreamError``), a malformed
container (``codec.container.ContainerError``) or one made for another preset or rate point
(``PresetMismatchError``). The simulator catches only ``StreamError``; any other exception in a
decode path is a bug and propagates.
"""

from __future__ import annotations

__all__ = ["StreamError", "CorruptStreamError", "ContainerError", "PresetMismatchError"]


class StreamError(ValueError):
    """Bytes of a stream or container that cannot be decoded as sent."""


class CorruptStreamError(StreamError):
    """A stream's bytes are damaged or truncated (HCI, HCI slice, caption)."""


class ContainerError(StreamError):
    """A container is malformed, too new for this reader, or for another preset."""


class PresetMismatchError(ContainerError):
    """A container made by another preset, rate point or token codebook than the decoder's."""
