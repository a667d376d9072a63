"""The codec's guidance streams as bytes: caption text coding (more streams join here)."""

from codec.streams.caption_coder import CaptionCoder

__all__ = ["CaptionCoder"]
