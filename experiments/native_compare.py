"""Compare several ``bench_native`` runs on the same photos: paired differences with CIs.

    python -m experiments.native_compare results/dpcd/native-steps1 results/dpcd/native-steps2 \
        [--out results/dpcd/native-steps]

Each argument is a ``bench_native`` output folder (or its ``bench_native.json``). Per run, over
the photos all runs share (matched by file name): bits per pixel, decode seconds, SDGIC's PSNR
minus the HCI's at the same rate point and minus the HCI alone at SDGIC's bits [dB], its
Inception similarity minus the HCI's at equal bits and minus the best classical codec's at
equal bits, and the patch FIDs (whole set; FID has no per-photo value). Paired differences
carry a 95 % Student-t interval over the photos. Writes ``summary.md`` and ``summary.json`` to
``--out`` when given, and with ``--plot`` ``rd.png``: the metrics against bpp.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmark.stats import mean_interval


def load(path) -> dict:
    """A bench_native record (folder or JSON file)."""
    path = Path(path)
    if path.is_dir():
        path = path / "bench_native.json"
    if not path.is_file():
        raise SystemExit(f"{path}: no bench_native.json (run experiments.bench_native first)")
    record = json.loads(path.read_text())
    record["_path"] = str(path.parent)
    return record


def per_photo(record: dict) -> dict[str, dict]:
    """Per photo name: its decode row, its equal-bits row and its Inception similarities."""
    rows = {r["image"]: dict(r) for r in record["images"]}
    for r in record.get("equal_bits", {}).get("photos", []):
        rows[r["image"]]["equal"] = r
    names = [r["image"] for r in record["images"]]
    for key, block in record.get("perceptual", {}).items():
        if isinstance(block, dict) and "inception_similarity" in block:
            for name, value in zip(names, block["inception_similarity"]):
                rows[name].setdefault("inception", {})[key] = value
    return rows


def label(record: dict) -> str:
    """What distinguishes a run: its folder name and decode settings."""
    parts = [Path(record["_path"]).name, f"steps {record.get('steps')}"]
    if record.get("strength") not in (None, 1, 1.0):
        parts.append(f"strength {record['strength']}")
    if record.get("without"):
        parts.append("without " + " ".join(record["without"]))
    if record.get("rate"):
        parts.append(f"rate {record['rate']}")
    parts.append(f"{record.get('precision')}, {record.get('threads')} thr")
    return ", ".join(parts)


def fmt(m, lo, hi, digits=2) -> str:
    if np.isnan(lo):
        return f"{m:+.{digits}f}"
    return f"{m:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"


def borrow_references(tables: list[dict], records: list[dict]) -> None:
    """Fill a run's missing equal-bits references from a run that coded the photo in the
    same bits (runs made with ``--no-equal-bits`` that differ only in decode settings)."""
    for rows in tables:
        for name, row in rows.items():
            if "equal" in row:
                continue
            for other, record in zip(tables, records):
                ref = other.get(name, {})
                if ref.get("equal", {}).get("sdgic_bits") == row["bits_total"]:
                    row["equal"] = ref["equal"]
                    for key, value in ref.get("inception", {}).items():
                        if key not in ("sdgic", "hci"):
                            row.setdefault("inception", {})[key] = value
                    row["reference_fid"] = {k: v["patch_fid"]
                                            for k, v in record.get("perceptual", {}).items()
                                            if k.endswith("_at_equal_bits")}
                    break


def compare(records: list[dict]) -> dict:
    """Paired statistics of each run over the photos all runs share."""
    tables = [per_photo(r) for r in records]
    borrow_references(tables, records)
    common = sorted(set.intersection(*(set(t) for t in tables)))
    if not common:
        raise SystemExit("the runs share no photo")
    out = {"photos": common, "runs": []}
    for record, rows in zip(records, tables):
        sel = [rows[n] for n in common]
        entry = {
            "run": record["_path"], "label": label(record), "command": record.get("command"),
            "steps": record.get("steps"), "rate": record.get("rate"),
            "without": record.get("without") or [],
            "bpp": float(np.mean([r["bpp"] for r in sel])),
            "decode_s": float(np.mean([r["decode_s"] for r in sel])),
            "psnr_sdgic_db": float(np.mean([r["psnr_sdgic_db"] for r in sel])),
            "psnr_minus_hci_db": mean_interval(
                [r["psnr_sdgic_db"] - r["psnr_hci_db"] for r in sel]),
        }
        if all("equal" in r for r in sel):
            for ref, key in (("hci", "hci_equal_bits"), ("best_classical", "best_classical")):
                pairs = [(r["psnr_sdgic_db"], r["equal"].get(f"{ref}_psnr_db")) for r in sel]
                pairs = [(a, b) for a, b in pairs if b is not None]   # (no point in the bits)
                if pairs:
                    entry[f"psnr_minus_{key}_db"] = mean_interval([a - b for a, b in pairs])
                    entry[f"photos_with_{key}"] = len(pairs)
                if len(pairs) == len(sel):    # (a mean over fewer photos is not comparable)
                    entry[f"psnr_{key}_db"] = float(np.mean([b for _, b in pairs]))
        if all("inception" in r for r in sel):
            inc = [r["inception"] for r in sel]
            entry["inception_sdgic"] = float(np.mean([i["sdgic"] for i in inc]))
            entry["inception_hci"] = float(np.mean([i["hci"] for i in inc]))
            for ref in ("hci_at_equal_bits", "best_classical_at_equal_bits"):
                if all(ref in i for i in inc):
                    entry[f"inception_{ref}"] = float(np.mean([i[ref] for i in inc]))
                    entry[f"inception_minus_{ref}"] = mean_interval(
                        [i["sdgic"] - i[ref] for i in inc])
            perc = record["perceptual"]
            entry["patch_fid"] = {k: v["patch_fid"] for k, v in perc.items()
                                  if isinstance(v, dict) and "patch_fid" in v}
            for k, v in sel[0].get("reference_fid", {}).items():
                entry["patch_fid"].setdefault(k, v)
            entry["patches"] = perc.get("patches")
        out["runs"].append(entry)
    return out


def markdown(summary: dict) -> str:
    head = ("| run | bpp | decode [s] | PSNR [dB] | − HCI same point | − HCI at equal bits "
            "| − best classical at equal bits | Inception | − HCI at equal bits "
            "| − best classical at equal bits | patch FID (HCI eq. bits / classical) |")
    lines = [f"{len(summary['photos'])} photos shared by all runs; paired means with 95 % t "
             "intervals over the photos.", "", head, "|" + "---|" * 11]
    n = len(summary["photos"])
    for e in summary["runs"]:
        def get(key, digits=2):
            if key not in e:
                return "–"
            ref = key.removeprefix("psnr_minus_").removesuffix("_db")
            some = e.get(f"photos_with_{ref}", n)
            return fmt(*e[key], digits=digits) + (f" ({some} of {n} photos)" if some < n else "")
        fid = e.get("patch_fid", {})
        nan = float("nan")
        fid_txt = (f"{fid.get('sdgic', nan):.1f} ({fid.get('hci_at_equal_bits', nan):.1f} / "
                   f"{fid.get('best_classical_at_equal_bits', nan):.1f})") if fid else "–"
        lines.append(
            f"| {e['label']} | {e['bpp']:.4f} | {e['decode_s']:.1f} | {e['psnr_sdgic_db']:.2f} "
            f"| {get('psnr_minus_hci_db')} | {get('psnr_minus_hci_equal_bits_db')} "
            f"| {get('psnr_minus_best_classical_db')} "
            f"| {e.get('inception_sdgic', float('nan')):.3f} "
            f"| {get('inception_minus_hci_at_equal_bits', 3)} "
            f"| {get('inception_minus_best_classical_at_equal_bits', 3)} | {fid_txt} |")
    lines += ["", "Commands:"] + [f"- `{e['command']}`" for e in summary["runs"]]
    return "\n".join(lines) + "\n"


def plot(summary: dict, path) -> None:
    """PSNR, Inception similarity and patch FID against bpp: each run's SDGIC point beside the
    HCI alone and the best classical codec at the same photos' SDGIC bits."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = sorted(summary["runs"], key=lambda e: e["bpp"])
    panels = [("PSNR [dB]", "psnr_sdgic_db", "psnr_hci_equal_bits_db", "psnr_best_classical_db"),
              ("Inception similarity", "inception_sdgic", "inception_hci_at_equal_bits",
               "inception_best_classical_at_equal_bits"),
              ("patch FID (lower is better)", ("patch_fid", "sdgic"),
               ("patch_fid", "hci_at_equal_bits"), ("patch_fid", "best_classical_at_equal_bits"))]

    def value(e, key):
        if isinstance(key, tuple):
            return e.get(key[0], {}).get(key[1], np.nan)
        return e.get(key, np.nan)

    def setting(e):
        return f"SDGIC, {e['steps']} steps" + (", no tokens" if e["without"] else "")

    groups: dict = {}
    for e in runs:
        groups.setdefault(setting(e), []).append(e)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, (name, own, *refs) in zip(axes, panels):
        for series, members in groups.items():
            ax.plot([e["bpp"] for e in members], [value(e, own) for e in members], "o-",
                    label=series)
        for key, series, style in zip(refs, ("HCI alone at equal bits",
                                             "best classical at equal bits"), ("s--", "^:")):
            pts = sorted({(e["bpp"], value(e, key)) for e in runs})
            pts = [(x, y) for x, y in pts if not np.isnan(y)]   # (runs without references)
            if pts:
                ax.plot(*zip(*pts), style, color="grey" if "HCI" in series else "black",
                        label=series)
        ax.set_xlabel("bpp (every stream counted)")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle(f"{len(summary['photos'])} photos, whole-image decode", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", help="bench_native output folders or JSON files")
    p.add_argument("--out", help="folder for summary.md and summary.json")
    p.add_argument("--plot", action="store_true", help="also rd.png in --out: the metrics "
                   "against bpp beside the HCI alone and the best classical codec")
    args = p.parse_args(argv)
    summary = compare([load(r) for r in args.runs])
    text = markdown(summary)
    print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.md").write_text(text)
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
        if args.plot:
            plot(summary, out / "rd.png")


if __name__ == "__main__":
    main()
