"""What the streams can carry, measured with the regression decoder → results/regression/.

    python -m experiments.regression_eval --model runs/regression --n 500

Held-out scenes (seed 7007, 64 px), captions from the scene captioner (as sent). For every HCI
rate point, the judge's semantic consistency of the regression decoder's output with: caption
+ HCI, caption + HCI + the first k RSRT tokens (k = 2, 4, 8), and single streams. Bits are
real payload bits per image (caption coder and HCI bytes, 10 bits per token). The question it
answers: at equal total bits, do tokens buy more consistency than a higher HCI rate?
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmark import seeds
from benchmark.captioner import SceneCaptioner
from benchmark.judge import SceneJudge
from benchmark.scene_dataset import render_scenes
from benchmark.stats import ci95
from codec.provenance import command_line, git_commit, python_call
from codec.streams.caption_coder import CaptionCoder
from codec.text_encoder import default_text_encoder
from training.dpcd import HCI_POINTS, load_hci_codecs
from training.regression import RegressionDecoder

EVAL_SEED = seeds.DPCD_EVAL


@torch.no_grad()
def run(model_dir: str, n: int, out: Path, hci_root: str, batch: int = 50,
        command: str | None = None) -> pd.DataFrame:
    model = RegressionDecoder.load(model_dir)
    text = default_text_encoder()
    judge = SceneJudge()
    images, scenes = render_scenes(n, seed=EVAL_SEED, size=64)
    captions = SceneCaptioner()(images)
    cap_bits = np.array([8 * len(CaptionCoder.load().encode(c)) for c in captions])
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    k_max = model.rsrt_encoder.config.num_tokens
    tbits = model.rsrt_encoder.fsq.bits
    rows = []
    for point, codec in zip(HCI_POINTS, load_hci_codecs(hci_root)):
        hci = codec.reconstruct_batch(x)
        hci_bits = np.array([8 * len(codec.encode(img)) for img in images])
        variants = [("caption+hci", True, True, 0), ("hci", False, True, 0),
                    ("caption", True, False, 0), ("rsrt", False, False, k_max),
                    ("none", False, False, 0)]
        variants += [(f"caption+hci+{k}tok", True, True, k) for k in (2, 4, k_max)]
        for name, use_cap, use_hci, k in variants:
            if point != HCI_POINTS[0] and not use_hci:
                continue  # streams without the HCI do not depend on its rate point
            recs = []
            for i in range(0, n, batch):
                sl = slice(i, i + batch)
                caps = [c if use_cap else "" for c in captions[sl]]
                cond, mask = text.tokens(caps)
                pooled = text.sentence(caps) * float(use_cap)
                codes = model.rsrt_encoder.encode(x[sl], hci[sl], pooled)
                present = torch.arange(k_max)[None].expand(len(caps), -1) < k
                tokens = model.rsrt_embedding(codes=codes, present=present)
                hp = torch.full((len(caps),), use_hci)
                recs.append(model(hci[sl], hp, cond, mask, tokens))
            rec = (torch.cat(recs).permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
            cons = [s["consistency"] for s in judge.consistency(rec, scenes)]
            bits = cap_bits * use_cap + hci_bits * use_hci + k * tbits
            rows.append({"variant": name, "hci_rate": point if use_hci else "-",
                         "tokens": k, "bits": float(bits.mean()), "bpp": float(bits.mean() / 4096),
                         "consistency": float(np.mean(cons)),
                         "consistency_ci95": ci95(cons)})
    df = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "consistency.csv", index=False)
    _plot(df, out / "consistency_vs_bits.png")
    src = [s["consistency"] for s in judge.consistency(images, scenes)]
    (out / "command.json").write_text(json.dumps({
        "command": command or python_call("experiments.regression_eval.run",
                                          model_dir=model_dir, n=n, out=str(out),
                                          hci_root=hci_root, batch=batch),
        "commit": git_commit(),
        "eval_seed": EVAL_SEED, "judge_on_sources": float(np.mean(src)),
        "model_card": json.loads((Path(model_dir) / "model_card.json").read_text())
        if (Path(model_dir) / "model_card.json").is_file() else None}, indent=2) + "\n")
    return df


def _plot(df: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for k, g in df[df.variant.str.startswith("caption+hci")].groupby("tokens"):
        g = g.sort_values("bits")
        ax.errorbar(g.bits, g.consistency, yerr=g.consistency_ci95, marker="o", capsize=3,
                    label=f"caption + HCI + {k} tokens" if k else "caption + HCI")
    ax.set_xlabel("payload bits per 64×64 image (HCI rate points low → top)")
    ax.set_ylabel("semantic consistency (judge)")
    ax.set_title("regression decoder (diagnostic)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="runs/regression")
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--hci", default="codec/weights/hci-64")
    p.add_argument("--out", default="results/regression")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    print(run(a.model, a.n, Path(a.out), a.hci,
              command=command_line("experiments.regression_eval", argv)).to_string())


if __name__ == "__main__":
    main()
