"""Early-stopping LDPC decoder: same messages as Sionna's, stops only on valid codewords,
and converged codewords leave the batch.

One torch thread; a few seconds.
"""

import pytest
import torch

from sionna.phy.fec.ldpc import LDPC5GDecoder, LDPC5GEncoder

from channels.ldpc import EarlyStopLDPC5GDecoder, _EarlyStopBP

torch.set_num_threads(1)


def _llr(enc, bs, snr_db, seed):
    """BPSK over AWGN at Es/N0 = snr_db: (info bits, channel logits, code bits)."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randint(0, 2, (bs, enc.k), generator=g).float()
    c = enc(u)
    sigma = 10 ** (-snr_db / 20)
    y = (1 - 2 * c) + sigma * torch.randn(c.shape, generator=g)
    return u, -2 * y / sigma ** 2


def _syndrome_zero(dec, x_hat_full):
    """Rows of [bs, num_vns] hard decisions (0/1) that satisfy every parity check."""
    bits = x_hat_full[:, dec._vn_idx_t.long()]
    cn, _ = dec._gather_to_cn(bits)
    return (torch.remainder(cn.sum(-1), 2.0) == 0).all(-1)


@pytest.mark.parametrize("k,n,zero_col", [(544, 1104, False), (100, 300, False),
                                           (424, 462, True)])   # MCS 28, 400-bit packet
def test_fused_iterations_equal_sionna_bit_for_bit(k, n, zero_col):
    # the fused layout computes the very same messages as Sionna's LDPCBPDecoder, also for
    # a high-rate code whose check nodes all have the maximum degree (no padded position)
    enc = LDPC5GEncoder(k, n)
    ref = LDPC5GDecoder(enc, num_iter=20, hard_out=False)
    dec = EarlyStopLDPC5GDecoder(enc, num_iter=20, hard_out=False)
    assert dec._fused_tables()["zero_col"] == zero_col
    g = torch.Generator().manual_seed(1)
    llr = torch.randn(6, dec._num_vns, generator=g) * 4
    from sionna.phy.fec.ldpc.decoding import LDPCBPDecoder
    for it in (0, 1, 3, 20):
        a = LDPCBPDecoder.call(ref, llr, num_iter=it)
        b = dec._call_fused(llr, it, stop=False)
        assert torch.equal(a, b), f"{it} iterations differ by {float((a - b).abs().max())}"
    # whole decoder (rate recovery, pruning) with stopping disabled
    _, l = _llr(enc, 16, 1.5, seed=2)
    stop_flag = _EarlyStopBP._call_fused
    try:
        _EarlyStopBP._call_fused = lambda self, x, m, stop=True: stop_flag(self, x, m, stop=False)
        assert torch.equal(ref(l), dec(l))
    finally:
        _EarlyStopBP._call_fused = stop_flag


def test_early_stop_gives_plain_decisions_with_fewer_iterations():
    enc = LDPC5GEncoder(544, 1104)
    plain = EarlyStopLDPC5GDecoder(enc, early_stop=False, num_iter=20)
    fast = EarlyStopLDPC5GDecoder(enc, early_stop=True, num_iter=20)
    u, l = _llr(enc, 48, 1.5, seed=3)   # moderate SNR: most rows converge early
    a, b = plain(l), fast(l)
    assert a.shape == b.shape == (48, 544) and b.dtype == torch.float32
    assert torch.equal(a, b)
    it = fast.last_iterations
    assert it.shape == (48,) and it.dtype == torch.int32
    assert 1 <= int(it.min()) and int(it.max()) <= 20 and float(it.float().mean()) < 15
    # at low SNR some rows never converge: they run all 20 iterations, as the plain decoder
    u, l = _llr(enc, 16, -1.0, seed=4)
    assert torch.equal(plain(l), fast(l))
    assert int((fast.last_iterations == 20).sum()) > 0


def test_rows_stop_at_a_valid_codeword_and_leave_the_batch(monkeypatch):
    enc = LDPC5GEncoder(544, 1104)
    fast = EarlyStopLDPC5GDecoder(enc, num_iter=20, hard_out=False, return_infobits=False)
    _, l = _llr(enc, 24, 1.2, seed=5)
    rows = []
    orig = _EarlyStopBP._cn_phi

    def spy(self, v2c, mask):
        rows.append(v2c.shape[0])
        return orig(self, v2c, mask)

    monkeypatch.setattr(_EarlyStopBP, "_cn_phi", spy)
    out = fast(l)
    it = fast.last_iterations
    # the batch shrinks as rows converge: row-iterations = sum of per-row iterations
    assert rows[0] == 24 and all(a >= b for a, b in zip(rows, rows[1:]))
    assert sum(rows) == int(it.sum()) < 24 * 20
    assert len(rows) == int(it.max())
    # a row stopped after i iterations holds what i plain iterations give, and is a codeword
    monkeypatch.setattr(_EarlyStopBP, "_cn_phi", orig)
    for i in sorted(set(it.tolist()) - {20}):
        plain_i = EarlyStopLDPC5GDecoder(enc, early_stop=False, num_iter=i, hard_out=False,
                                         return_infobits=False)
        sel = it == i
        assert torch.equal(out[sel], plain_i(l)[sel])
    assert bool((it < 20).any())


def test_converged_rows_satisfy_parity_checks():
    # on the decoder's own graph (all n_ldpc variable nodes): the all-zero codeword plus noise
    enc = LDPC5GEncoder(544, 1104)
    fast = EarlyStopLDPC5GDecoder(enc, num_iter=20)
    g = torch.Generator().manual_seed(7)
    sigma = 0.8
    llr = -2 * (1 + sigma * torch.randn(32, fast._num_vns, generator=g)) / sigma ** 2
    x = fast._call_fused(llr, 20, stop=True)                  # [32, num_vns] hard decisions
    stopped = fast.last_iterations < 20
    assert 16 <= int(stopped.sum()) < 32
    assert bool(_syndrome_zero(fast, x)[stopped].all())
