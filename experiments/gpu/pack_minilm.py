"""Usage: pack_minilm.py OUT_DIR. Pack the offline MiniLM for a GPU machine whose file budget cannot hold it whole: fp16, and
only the word-embedding rows that scene captions can use (every other row is zero there)."""
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer

from benchmark.captioner import background_words
from benchmark.scenes import _POSITION_PHRASES, COLOUR_NAMES, SHAPES, SIZES, TEXTURES
from codec.text_encoder import minilm_path

src, out = minilm_path(), Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
tok = AutoTokenizer.from_pretrained(src)
words = set(SHAPES) | set(COLOUR_NAMES) | set(SIZES) | set(TEXTURES) | set(background_words())
words |= {"a", "an", "and", "on", "background", ",", "object"}   # "object": layout captions
words |= set(" ".join(_POSITION_PHRASES).split())
ids = set(tok.all_special_ids)
for w in words:
    ids |= set(tok(w, add_special_tokens=False)["input_ids"])
ids = torch.tensor(sorted(ids), dtype=torch.int32)
sd = load_file(src / "model.safetensors")
key = [k for k in sd if k.endswith("word_embeddings.weight")][0]
packed = {k: v.half().contiguous() for k, v in sd.items() if k != key}
packed["__word_ids__"] = ids
packed["__word_rows__"] = sd[key][ids.long()].half().contiguous()
save_file(packed, out / "packed.safetensors", metadata={"word_key": key,
                                                         "vocab": str(sd[key].shape[0])})
for f in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
          "vocab.txt"):
    shutil.copy(src / f, out / f)
print(len(ids), "word ids kept;", (out / "packed.safetensors").stat().st_size, "bytes")
