"""Usage: expand_minilm.py PACKED_DIR OUT_DIR. Inverse of pack_minilm.py: a loadable fp32 MiniLM folder (rows not packed are zero)."""
import shutil, sys
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

src, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
with safe_open(src / "packed.safetensors", "pt") as f:
    meta = f.metadata()
p = load_file(src / "packed.safetensors")
ids, rows = p.pop("__word_ids__").long(), p.pop("__word_rows__")
emb = torch.zeros(int(meta["vocab"]), rows.shape[1])
emb[ids] = rows.float()
sd = {k: v.float() for k, v in p.items()}
sd[meta["word_key"]] = emb
save_file(sd, out / "model.safetensors")
for f in src.iterdir():
    if f.name != "packed.safetensors":
        shutil.copy(f, out / f.name)
torch.save(ids, out / "kept_ids.pt")
print("expanded MiniLM to", out)
