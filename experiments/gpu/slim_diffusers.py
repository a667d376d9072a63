"""Cut a diffusers wheel down to the modules DPCD training imports (for the device tool's
64 MiB limit): run a two-step tiny training, keep the diffusers modules it loaded, all of
``diffusers/utils`` and every data file. Usage: slim_diffusers.py WHEEL OUT.zip"""
import os
import sys
import tempfile
import zipfile
from pathlib import Path

wheel, out = Path(sys.argv[1]), Path(sys.argv[2])
with tempfile.TemporaryDirectory() as tmp:
    from training.dpcd import train_dpcd

    train_dpcd(Path(tmp) / "c", stage="control", steps=2, config="tiny", batch_size=2,
               save_every=2, threads=1, sample_every=0, export=Path(tmp) / "p")
used = {m.replace(".", "/") for m in sys.modules if m.split(".")[0] == "diffusers"}
with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
    for name in src.namelist():
        stem = name[:-3] if name.endswith(".py") else None
        keep = (not name.startswith("diffusers/") or name.startswith("diffusers/utils/")
                or not name.endswith(".py") or stem in used
                or (name.endswith("/__init__.py") and name[:-12] in used))
        if keep:
            dst.writestr(name, src.read(name))
print(f"{out}: {os.path.getsize(out)} bytes")
