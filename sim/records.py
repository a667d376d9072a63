"""Records: one tidy row per image, and files pandas reads.

Columns of :func:`image_rows` (one row per image):

* run: ``point_id``, ``scenario``, ``channel_model``, ``ue_speed_kmh``, ``mode``, ``snr_db``,
  ``budget_prbs``, ``budget_re``, ``policy``, ``seed``, ``codec``, ``arrival``,
  ``codec_fingerprint``, ``bit_budget`` (:meth:`sim.bit_budget.BitBudget.describe`; ``""``
  for a codec with its own rate), ``system`` (codec, policy and budget, as plots label
  them), ``mcs_table``, ``harq_rtt_slots``, ``rsrt_tokens_per_packet``,
  ``interval_ms``, ``deadline_ms``, ``num_images``, ``mcs_<stream>`` (-1: link adaptation),
  ``max_retx_<stream>``, ``calibration`` (the abstraction's calibration, ``"name@key"``;
  ``"none"`` when the run used the raw abstraction; ``""`` at bit level);
* image: ``image_id``, ``dataset_index``, ``arrival_ms``;
* per stream ``s`` in caption/hci/rsrt: ``bits_s`` (sent), ``delivered_bits_s``,
  ``packets_s``, ``delivered_packets_s``, ``ok_s`` (the whole stream arrived by the
  deadline), ``latency_s_ms`` (last packet of the stream, from arrival; NaN unless ``ok_s``);
* ``hci_slices``, ``hci_slices_received`` (a sliced HCI; 0 otherwise), ``rsrt_tokens``,
  ``rsrt_tokens_received``, ``rsrt_lost`` (lost token indices, ``"1,5"``),
  ``streams_received`` (``"caption+rsrt"``; ``""`` for none), ``complete`` (all streams),
  ``latency_ms`` (all streams in, from arrival; NaN unless complete);
* ``decoded_streams``: the streams the decoder actually used (``streams_received`` less any
  stream it rejected as undecodable, see :func:`sim.simulation.usable_streams`; ``None``
  without decoding). ``ok_s`` says the stream *arrived*; a stream that arrived with an
  undetected error may be absent from ``decoded_streams`` (and is named in
  ``undetected_errors``);
* link: ``transmissions``, ``retransmissions``, ``re_used`` and per stream ``re_s`` (resource
  elements the image's packets used, every transmission counted), ``dropped_deadline``
  (packets dropped at the deadline or with no time left for a retransmission),
  ``dropped_retx`` (packets out of transmissions), ``undetected_errors`` (streams whose
  CRC-passing bits differ from what was sent, bit level only; ``""`` if none);
* size: ``bits_total`` (payload bits of every stream sent), ``bpp``, ``budget_bits`` (the
  image's bit budget, :mod:`sim.bit_budget`; -1 for a codec with its own rate) and what the
  codec says of its encoding (``classical_scale`` for jpeg/webp/avif: coded side / original
  side, 0 when nothing fit the budget; ``hci_rate`` for hci);
* metrics (if decoded): ``psnr``, ``ms_ssim``, ``consistency``, ``judge_<attribute>`` (scenes),
  ``inception_similarity`` (photos) ...

The optional trace has one row per packet transmission (see
:class:`~sim.channel_process.ChannelProcess`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from .packets import STREAMS

__all__ = ["image_rows", "write_table", "read_table"]


def image_rows(images, run: dict, slot_ms: float, link) -> list[dict]:
    """Rows for the finalized :class:`~sim.receiver.ImageInFlight` s of one run."""
    rows = []
    for img in images:
        enc, rx = img.encoded, img.received
        arr = img.arrival
        row = dict(run)
        row.update(image_id=img.image_id, dataset_index=img.meta.get("dataset_index"),
                   arrival_ms=arr * slot_ms)
        delivered = [p for p in img.delivered if p.delivered_at is not None
                     and p.delivered_at <= img.deadline]
        last_all = []
        for s in STREAMS:
            sent = [p for p in img.packets if p.stream == s]
            got = [p for p in delivered if p.stream == s]
            ok = enc.has(s) and bool(sent) and len({p.seq for p in got}) == len(sent)
            row[f"bits_{s}"] = int(enc.stream_bits(s))
            row[f"delivered_bits_{s}"] = int(sum(p.size_bits for p in got))
            row[f"packets_{s}"] = len(sent)
            row[f"delivered_packets_{s}"] = len(got)
            row[f"ok_{s}"] = ok
            t = max((p.delivered_at for p in got), default=math.nan)
            row[f"latency_{s}_ms"] = (t - arr) * slot_ms if ok else math.nan
            if enc.has(s):
                last_all.append((t if sent else arr) if ok else math.inf)
        k = len(enc.rsrt_tokens) if enc.rsrt_tokens is not None else 0
        lost = rx.lost_tokens() if rx.rsrt_tokens is not None else list(range(k))
        ns = len(enc.hci_slices) if enc.hci_slices is not None else 0
        row["hci_slices"] = ns
        row["hci_slices_received"] = (sum(v is not None for v in rx.hci_slices)
                                      if rx.hci_slices is not None else 0)
        row["rsrt_tokens"] = k
        row["rsrt_tokens_received"] = k - len(lost)
        row["rsrt_lost"] = ",".join(map(str, lost))
        row["streams_received"] = _streams(rx)
        row["decoded_streams"] = _streams(img.decoded) if img.decoded is not None else None
        complete = bool(last_all) and all(math.isfinite(t) for t in last_all)
        row["complete"] = complete
        row["latency_ms"] = (max(last_all) - arr) * slot_ms if complete else math.nan
        tx = sum(p.attempts for p in img.packets)
        row["transmissions"] = int(tx)
        row["retransmissions"] = int(sum(max(0, p.attempts - 1) for p in img.packets))
        for s in STREAMS:
            row[f"re_{s}"] = int(sum(p.attempts * link.transport_format(int(p.size_bits),
                                                                       int(p.mcs)).num_re
                                     for p in img.packets if p.attempts and p.stream == s))
        row["re_used"] = int(sum(row[f"re_{s}"] for s in STREAMS))
        row["dropped_deadline"] = sum(1 for _, r in img.dropped if r == "deadline")
        row["dropped_retx"] = sum(1 for _, r in img.dropped if r == "retx")
        row["undetected_errors"] = ",".join(img.corrupted)
        row["bits_total"] = int(enc.total_bits())
        row["bpp"] = enc.total_bits() / (enc.height * enc.width)
        b = img.meta.get("budget_bits")
        row["budget_bits"] = -1 if b is None else int(b)
        row.update(img.meta.get("encoding", {}))
        row.update(img.meta.get("metrics", {}))
        row.update(img.meta.get("semantic", {}))
        rows.append(row)
    return rows


def _streams(enc) -> str:
    """``"caption+rsrt"``: the streams ``enc`` carries (RSRT only with a token left)."""
    return "+".join(s for s in STREAMS if enc.has(s) and
                    (s != "rsrt" or any(t is not None for t in enc.rsrt_tokens)))


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` atomically (``.parquet`` or ``.csv`` by suffix): a reader never sees a
    half-written file, and a crash leaves either the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    if path.suffix == ".parquet":
        df.to_parquet(tmp, index=False)
    elif path.suffix == ".csv":
        df.to_csv(tmp, index=False)
    else:
        raise ValueError(f"path = {str(path)!r} is not supported; allowed suffixes: .parquet, .csv")
    os.replace(tmp, path)
    return path


def read_table(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


