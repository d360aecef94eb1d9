"""Fused linear head family: every function against its unfused composition (tests/reference.py:
the logits formed by NumPy in the same dtype, then the softmax twins), over options, dtypes, bias,
layouts and blockings (the default one and small ones that make many row blocks, vocabulary blocks
whose count is not a multiple of anything, and vocabulary groups); errors; threads."""
import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import fastinfo as fi
import reference as ref
from fastinfo import _linear

FLOATS = [np.float32, np.float64]
REDUCTIONS = ["mean", "sum", "none"]

# (rows max, rows min, vocabulary block, target items): the default, many small blocks, many groups
BLOCKINGS = {
    "default": None,
    "small": (32, 16, 100, 16),
    "groups": (16, 16, 48, 64),
}


@pytest.fixture(params=list(BLOCKINGS))
def blocking(request, monkeypatch):
    values = BLOCKINGS[request.param]
    if values is not None:
        for name, value in zip(("_BLOCK_ROWS_MAX", "_BLOCK_ROWS_MIN", "_BLOCK_VOCAB", "_TARGET_ITEMS"), values):
            monkeypatch.setattr(_linear, name, value)
    return request.param


def tolerance(dtype):
    return 1e-12 if np.dtype(dtype) == np.float64 else 1e-5


def assert_matches(got, want, dtype, scale=None):
    """Within 1e-5 (float32) / 1e-12 (float64) relative, and as much absolute relative to the largest
    entry (gradient entries that cancel); NaN where the composition is NaN."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape
    finite = np.isfinite(want)
    scale = scale if scale is not None else (float(np.max(np.abs(want[finite]), initial=0.0)) or 1.0)
    tol = tolerance(dtype)
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale, equal_nan=True)


def make_model(dtype, n_rows=37, d=23, n_vocab=257, seed=0, bias=True, batch=None):
    rng = np.random.default_rng(seed)
    shape = (n_rows,) if batch is None else batch
    hidden = rng.standard_normal((*shape, d)).astype(dtype)
    head = (rng.standard_normal((n_vocab, d)) * 0.7).astype(dtype)
    b = (rng.standard_normal(n_vocab) * 0.5).astype(dtype) if bias else None
    target = rng.integers(0, n_vocab, shape)
    weight = rng.random(n_vocab) + 0.5
    return hidden, head, b, target, weight


OPTIONS = {
    "plain": {},
    "ignore": {"ignore_index": -100},
    "smooth_weight": {"label_smoothing": 0.15, "weight": True},
    "everything": {"ignore_index": -100, "label_smoothing": 0.05, "weight": True, "temperature": 1.7},
    "temperature": {"temperature": 0.4},
}


def _options(name, weight):
    options = dict(OPTIONS[name])
    if options.get("weight"):
        options["weight"] = weight
    return options


def _with_ignored(target, options):
    if "ignore_index" in options:
        target = target.copy()
        target.reshape(-1)[::4] = -100
    return target


# ----------------------------------------------------------------------------- against the composition


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("option", list(OPTIONS))
def test_cross_entropy_matches_composition(dtype, with_bias, option, blocking):
    hidden, head, bias, target, weight = make_model(dtype, bias=with_bias)
    options = _options(option, weight)
    target = _with_ignored(target, options)
    for reduction in REDUCTIONS:
        got = fi.linear_cross_entropy(hidden, head, target, bias=bias, reduction=reduction, **options)
        want = ref.ref_linear_cross_entropy(hidden, head, target, bias, reduction=reduction, **options)
        if reduction == "none":
            assert got.dtype == dtype and got.shape == target.shape
        else:
            assert type(got) is float
        assert_matches(got, want, dtype)
        loss, g_hidden, g_head, g_bias = fi.linear_cross_entropy_with_grad(
            hidden, head, target, bias=bias, reduction=reduction, **options)
        assert_matches(loss, want, dtype)
        w_hidden, w_head, w_bias = ref.ref_linear_cross_entropy_grads(hidden, head, target, bias,
                                                                      reduction=reduction, **options)
        assert g_hidden.dtype == dtype and g_hidden.shape == hidden.shape
        assert g_head.dtype == dtype and g_head.shape == head.shape
        assert_matches(g_hidden, w_hidden, dtype)
        assert_matches(g_head, w_head, dtype)
        if with_bias:
            assert g_bias.dtype == dtype and g_bias.shape == bias.shape
            assert_matches(g_bias, w_bias, dtype)
        else:
            assert g_bias is None
        if "ignore_index" in options:  # ignored rows: zero gradient
            assert not g_hidden[target == -100].any()


@pytest.mark.parametrize("dtype", FLOATS)
def test_entropy_kl_perplexity_match_composition(dtype, blocking):
    hidden, head, bias, target, _ = make_model(dtype, seed=1)
    rng = np.random.default_rng(2)
    hidden_q = rng.standard_normal((hidden.shape[0], 11)).astype(dtype)
    head_q = rng.standard_normal((head.shape[0], 11)).astype(dtype)
    for temperature, base in [(1.0, None), (2.5, 2), (0.6, 10.0)]:
        got = fi.linear_softmax_entropy(hidden, head, bias=bias, temperature=temperature, base=base)
        assert got.dtype == dtype and got.shape == target.shape
        assert_matches(got, ref.ref_linear_softmax_entropy(hidden, head, bias, temperature, base), dtype)
        for reduction in REDUCTIONS:
            got = fi.linear_kl_divergence(hidden, head, hidden_q, head_q, bias_p=bias, temperature=temperature,
                                          reduction=reduction, base=base)
            want = ref.ref_linear_kl_divergence(hidden, head, hidden_q, head_q, bias, None, temperature, reduction,
                                                base)
            assert_matches(got, want, dtype)
            got = fi.linear_kl_divergence(hidden_q, head_q, hidden, head, bias_q=bias, temperature=temperature,
                                          reduction=reduction, base=base)
            want = ref.ref_linear_kl_divergence(hidden_q, head_q, hidden, head, None, bias, temperature, reduction,
                                                base)
            assert_matches(got, want, dtype)
        target[::5] = -1
        got = fi.linear_perplexity(hidden, head, target, bias=bias, ignore_index=-1, temperature=temperature)
        assert type(got) is float
        assert_matches(got, ref.ref_linear_perplexity(hidden, head, target, bias, -1, temperature), dtype)
    # a model against itself: KL 0
    np.testing.assert_allclose(fi.linear_kl_divergence(hidden, head, hidden, head), 0.0, atol=tolerance(dtype) * 10)


def test_report_matches_the_functions(blocking):
    """The one-pass statistics of ``fastinfo logits --head`` equal the public functions."""
    hidden, head, bias, target, _ = make_model(np.float64, n_rows=61, seed=3)
    rng = np.random.default_rng(4)
    hidden_q, head_q = rng.standard_normal((61, 9)), rng.standard_normal((head.shape[0], 9))
    target[::3] = -100
    keep = target != -100
    rep = _linear.linear_report(hidden, head, target, bias=bias, hidden_q=hidden_q, head_q=head_q,
                                temperature=1.3, ignore_index=-100)
    opts = dict(temperature=1.3)
    assert_matches(rep["cross_entropy"], fi.linear_cross_entropy(hidden, head, target, bias=bias, reduction="none",
                                                                 ignore_index=-100, **opts)[keep], np.float64)
    assert_matches(rep["entropy"], fi.linear_softmax_entropy(hidden, head, bias=bias, **opts)[keep], np.float64)
    assert_matches(rep["cross_entropy_q"], fi.linear_cross_entropy(hidden_q, head_q, target, reduction="none",
                                                                   ignore_index=-100, **opts)[keep], np.float64)
    assert_matches(rep["kl_pq"], fi.linear_kl_divergence(hidden, head, hidden_q, head_q, bias_p=bias, **opts)[keep],
                   np.float64)
    assert_matches(rep["kl_qp"], fi.linear_kl_divergence(hidden_q, head_q, hidden, head, bias_q=bias, **opts)[keep],
                   np.float64)
    logits_p, logits_q = hidden @ head.T + bias, hidden_q @ head_q.T
    same = np.argmax(logits_p, axis=1) == np.argmax(logits_q, axis=1)
    np.testing.assert_array_equal(rep["same_argmax"], same[keep])
    no_q = _linear.linear_report(hidden, head, target, bias=bias, ignore_index=-100, temperature=1.3)
    np.testing.assert_allclose(no_q["entropy"], rep["entropy"], rtol=1e-12)
    np.testing.assert_allclose(no_q["cross_entropy"], rep["cross_entropy"], rtol=1e-12)


def test_torch_cross_entropy_of_linear():
    """The expression users write today: F.cross_entropy(F.linear(h, W, b), t) and its autograd."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    hidden, head, bias, target, weight = make_model(np.float64, seed=5)
    target[::6] = -100
    h, w, b = (torch.tensor(a, requires_grad=True) for a in (hidden, head, bias))
    loss = F.cross_entropy(F.linear(h, w, b), torch.tensor(target), ignore_index=-100, label_smoothing=0.1,
                           weight=torch.tensor(weight))
    loss.backward()
    got = fi.linear_cross_entropy_with_grad(hidden, head, target, bias=bias, ignore_index=-100, label_smoothing=0.1,
                                            weight=weight)
    for mine, theirs in zip(got, (loss, h.grad, w.grad, b.grad)):
        np.testing.assert_allclose(mine, theirs.detach().numpy(), rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------- dtypes and layouts


def test_half_precision_is_widened_per_block():
    hidden, head, bias, target, weight = make_model(np.float16, seed=6)
    for h, w in [(hidden, head), (hidden, head.astype(np.float32)), (hidden.astype(np.float32), head)]:
        got = fi.linear_cross_entropy(h, w, target, bias=bias, reduction="none", label_smoothing=0.1, weight=weight)
        assert got.dtype == np.float32
        want = ref.ref_linear_cross_entropy(h.astype(np.float32), w.astype(np.float32), target, bias,
                                            reduction="none", label_smoothing=0.1, weight=weight)
        assert_matches(got, want, np.float32)
        _, g_hidden, g_head, g_bias = fi.linear_cross_entropy_with_grad(h, w, target, bias=bias)
        assert g_hidden.dtype == g_head.dtype == g_bias.dtype == np.float32
        w_hidden, w_head, w_bias = ref.ref_linear_cross_entropy_grads(h.astype(np.float32), w.astype(np.float32),
                                                                      target, bias)
        assert_matches(g_hidden, w_hidden, np.float32)
        assert_matches(g_head, w_head, np.float32)
        assert_matches(g_bias, w_bias, np.float32)
    assert_matches(fi.linear_softmax_entropy(hidden, head),
                   ref.ref_linear_softmax_entropy(hidden.astype(np.float32), head.astype(np.float32)), np.float32)
    # every float16 value, subnormals and infinities included, is widened exactly
    bits = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    bits = bits[np.isfinite(bits)].reshape(-1, 1)
    got = fi.linear_softmax_entropy(bits[:4096], np.ones((2, 1), np.float16))
    assert np.all(got == np.float32(np.log(2)))  # two equal logits per row, whatever they are
    x = fi.linear_kl_divergence(bits, np.array([[1.0], [0.0]], np.float16), bits.astype(np.float32),
                                np.array([[1.0], [0.0]], np.float32))
    np.testing.assert_array_equal(x, 0.0)


def test_bfloat16_via_ml_dtypes():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    hidden, head, bias, target, _ = make_model(np.float32, seed=7)
    hb, wb, bb = (a.astype(ml_dtypes.bfloat16) for a in (hidden, head, bias))
    got = fi.linear_cross_entropy(hb, wb, target, bias=bb, reduction="none")
    assert got.dtype == np.float32
    want = ref.ref_linear_cross_entropy(hb.astype(np.float32), wb.astype(np.float32), target,
                                        bb.astype(np.float32), reduction="none")
    assert_matches(got, want, np.float32)
    _, g_hidden, g_head, g_bias = fi.linear_cross_entropy_with_grad(hb, wb, target, bias=bb)
    assert g_hidden.dtype == g_head.dtype == g_bias.dtype == np.float32
    w_hidden, w_head, _ = ref.ref_linear_cross_entropy_grads(hb.astype(np.float32), wb.astype(np.float32), target,
                                                             bb.astype(np.float32))
    assert_matches(g_head, w_head, np.float32)
    assert_matches(g_hidden, w_hidden, np.float32)


def test_mixed_and_integer_dtypes():
    hidden, head, bias, target, _ = make_model(np.float32, seed=8)
    head64 = head.astype(np.float64)
    got = fi.linear_cross_entropy(hidden, head64, target, bias=bias, reduction="none")
    assert got.dtype == np.float64
    assert_matches(got, ref.ref_linear_cross_entropy(hidden, head64, target, bias, reduction="none"), np.float64)
    _, g_hidden, g_head, g_bias = fi.linear_cross_entropy_with_grad(hidden, head64, target, bias=bias)
    assert (g_hidden.dtype, g_head.dtype, g_bias.dtype) == (np.float32, np.float64, np.float32)
    w_hidden, w_head, w_bias = ref.ref_linear_cross_entropy_grads(hidden, head64, target, bias)
    assert_matches(g_hidden, w_hidden, np.float32)
    assert_matches(g_head, w_head, np.float64)
    ints = np.round(hidden * 3).astype(np.int32)
    got = fi.linear_softmax_entropy(ints, head)
    assert got.dtype == np.float64
    assert_matches(got, ref.ref_linear_softmax_entropy(ints.astype(np.float64), head.astype(np.float64)),
                   np.float64)


def _layouts(a):
    yield "C", np.ascontiguousarray(a)
    yield "F", np.asfortranarray(a)
    big = np.zeros((2 * a.shape[0], 3 * a.shape[1]), dtype=a.dtype)
    view = big[::2, 1::3]
    view[...] = a
    yield "strided", view
    yield "negative", np.ascontiguousarray(a[::-1, ::-1])[::-1, ::-1]
    yield "padded rows", np.pad(a, ((0, 0), (0, 5)))[:, :a.shape[1]]


@pytest.mark.parametrize("dtype", FLOATS)
def test_layouts_give_the_contiguous_results(dtype):
    hidden, head, bias, target, _ = make_model(dtype, n_rows=70, seed=9)
    target[::3] = -100
    want = fi.linear_cross_entropy_with_grad(hidden, head, target, bias=bias, ignore_index=-100, reduction="none")
    for name_h, h in _layouts(hidden):
        for name_w, w in _layouts(head):
            got = fi.linear_cross_entropy_with_grad(h, w, target, bias=bias, ignore_index=-100, reduction="none")
            for a, b in zip(got, want):
                np.testing.assert_allclose(a, b, rtol=4 * tolerance(dtype), atol=1e-6 * np.abs(b).max(),
                                           err_msg=f"hidden {name_h}, head {name_w}")


def test_read_only_memmap_and_nd_hidden(tmp_path):
    hidden, head, bias, target, _ = make_model(np.float32, batch=(3, 7, 5), seed=10)
    path = tmp_path / "hidden.npy"
    np.save(path, hidden)
    mapped = np.load(path, mmap_mode="r")
    got = fi.linear_cross_entropy(mapped, head, target, bias=bias, reduction="none")
    assert got.shape == (3, 7, 5)
    assert_matches(got, ref.ref_linear_cross_entropy(hidden, head, target, bias, reduction="none"), np.float32)
    _, g_hidden, _, _ = fi.linear_cross_entropy_with_grad(mapped, head, target)
    assert g_hidden.shape == hidden.shape
    row = fi.linear_softmax_entropy(hidden[0, 0, 0], head)   # 1-D hidden: one row
    assert np.ndim(row) == 0 and row.dtype == np.float32
    assert_matches(row, ref.ref_linear_softmax_entropy(hidden[0, 0, 0][None], head)[0], np.float32)


# ----------------------------------------------------------------------------- tiny, empty, non-finite


@pytest.mark.parametrize("dtype", FLOATS)
def test_tiny_and_empty(dtype):
    rng = np.random.default_rng(11)
    head = rng.standard_normal((5, 3)).astype(dtype)
    empty = np.zeros((0, 3), dtype)
    assert fi.linear_cross_entropy(empty, head, np.zeros(0, int), reduction="none").shape == (0,)
    assert np.isnan(fi.linear_cross_entropy(empty, head, np.zeros(0, int)))
    assert fi.linear_cross_entropy(empty, head, np.zeros(0, int), reduction="sum") == 0.0
    loss, g_hidden, g_head, g_bias = fi.linear_cross_entropy_with_grad(empty, head, np.zeros(0, int),
                                                                       bias=np.zeros(5, dtype))
    assert np.isnan(loss) and g_hidden.shape == (0, 3) and not g_head.any() and not g_bias.any()
    assert fi.linear_softmax_entropy(empty, head).shape == (0,)
    assert np.isnan(fi.linear_kl_divergence(empty, head, empty, head, reduction="mean"))
    # every row ignored
    hidden = rng.standard_normal((4, 3)).astype(dtype)
    target = np.full(4, -1)
    loss, g_hidden, g_head, _ = fi.linear_cross_entropy_with_grad(hidden, head, target, ignore_index=-1)
    assert np.isnan(loss) and not g_hidden.any() and not g_head.any()
    assert np.isnan(fi.linear_perplexity(hidden, head, target, ignore_index=-1))
    # one class: loss 0, entropy 0
    one = head[:1]
    assert fi.linear_cross_entropy(hidden, one, np.zeros(4, int)) == 0.0
    np.testing.assert_array_equal(fi.linear_softmax_entropy(hidden, one), 0.0)
    # d = 0: the logits are the bias
    bias = rng.standard_normal(5).astype(dtype)
    target = rng.integers(0, 5, 4)
    got = fi.linear_cross_entropy(np.zeros((4, 0), dtype), np.zeros((5, 0), dtype), target, bias=bias,
                                  reduction="none")
    assert_matches(got, ref.ref_softmax_cross_entropy(np.tile(bias, (4, 1)), target, reduction="none"), dtype)
    _, g_hidden, g_head, g_bias = fi.linear_cross_entropy_with_grad(np.zeros((4, 0), dtype), np.zeros((5, 0), dtype),
                                                                    target, bias=bias)
    assert g_hidden.shape == (4, 0) and g_head.shape == (5, 0)
    assert_matches(g_bias, ref.ref_softmax_cross_entropy_grad(np.tile(bias, (4, 1)), target).sum(0), dtype)
    # an empty vocabulary: entropy NaN, every target out of range
    assert np.isnan(fi.linear_softmax_entropy(hidden, np.zeros((0, 3), dtype))).all()
    with pytest.raises(ValueError, match="outside"):
        fi.linear_cross_entropy(hidden, np.zeros((0, 3), dtype), np.zeros(4, int))


@pytest.mark.parametrize("dtype", FLOATS)
def test_non_finite_values(dtype, blocking):
    hidden, head, bias, target, _ = make_model(dtype, seed=12)
    hidden[3, 4] = np.nan
    hidden[7, 0] = np.inf
    hidden[9, 2] = -np.inf
    bad = np.zeros(hidden.shape[0], bool)
    bad[[3, 7, 9]] = True
    loss = fi.linear_cross_entropy(hidden, head, target, bias=bias, reduction="none")
    assert np.isnan(loss[bad]).all() and np.isfinite(loss[~bad]).all()
    assert_matches(loss[~bad], ref.ref_linear_cross_entropy(hidden[~bad], head, target[~bad], bias,
                                                            reduction="none"), dtype)
    assert np.isnan(fi.linear_softmax_entropy(hidden, head))[bad].all()
    kl = fi.linear_kl_divergence(hidden, head, np.nan_to_num(hidden, posinf=0, neginf=0), head)
    assert np.isnan(kl[bad]).all() and np.isfinite(kl[~bad]).all()
    _, g_hidden, g_head, _ = fi.linear_cross_entropy_with_grad(hidden, head, target, reduction="none")
    assert np.isnan(g_hidden[bad]).all() and np.isfinite(g_hidden[~bad]).all()
    assert np.isnan(g_head).all()   # as the composition: NaN rows reach every head row
    # a -inf bias masks vocabulary entries; +inf makes every row NaN
    masked = bias.copy()
    masked[::3] = -np.inf
    target = target // 3 * 3 + 1   # never a masked class
    clean = np.nan_to_num(hidden, nan=0.0, posinf=0.0, neginf=0.0)
    got = fi.linear_cross_entropy(clean, head, target, bias=masked, reduction="none")
    assert_matches(got, ref.ref_linear_cross_entropy(clean, head, target, masked, reduction="none"), dtype)
    assert_matches(fi.linear_softmax_entropy(clean, head, bias=masked),
                   ref.ref_linear_softmax_entropy(clean, head, masked), dtype)
    plus = bias.copy()
    plus[5] = np.inf
    assert np.isnan(fi.linear_cross_entropy(clean, head, target, bias=plus, reduction="none")).all()


# ----------------------------------------------------------------------------- errors


def test_errors_name_arguments_and_shapes():
    hidden, head, bias, target, weight = make_model(np.float64, n_rows=6, d=4, n_vocab=9, seed=13)
    with pytest.raises(ValueError, match=r"hidden and head must have the same width d: hidden has shape \(6, 4\)"
                                         r".*head has shape \(9, 5\)"):
        fi.linear_cross_entropy(hidden, np.zeros((9, 5)), target)
    with pytest.raises(ValueError, match=r"bias must have shape \(9,\).*head \(shape \(9, 4\)\).*bias of shape \(8,\)"):
        fi.linear_cross_entropy(hidden, head, target, bias=np.zeros(8))
    with pytest.raises(ValueError, match=r"weight must have shape \(9,\).*head \(shape \(9, 4\)\).*\(10,\)"):
        fi.linear_cross_entropy(hidden, head, target, weight=np.ones(10))
    with pytest.raises(ValueError, match=r"target must have shape \(6,\).*hidden \(shape \(6, 4\)\).*\(5,\)"):
        fi.linear_cross_entropy(hidden, head, target[:5])
    with pytest.raises(ValueError, match=r"head must be 2-D"):
        fi.linear_softmax_entropy(hidden, head[0])
    with pytest.raises(ValueError, match=r"hidden must have at least one dimension"):
        fi.linear_softmax_entropy(np.float64(1.0), head)
    with pytest.raises(ValueError, match=r"head_p and head_q must have the same vocabulary size.*\(9, 4\).*\(8, 4\)"):
        fi.linear_kl_divergence(hidden, head, hidden, head[:8])
    with pytest.raises(ValueError, match=r"hidden_p and hidden_q must have the same rows.*\(6, 4\).*\(5, 4\)"):
        fi.linear_kl_divergence(hidden, head, hidden[:5], head)
    with pytest.raises(ValueError, match=r"hidden_q and head_q must have the same width"):
        fi.linear_kl_divergence(hidden, head, hidden, np.zeros((9, 3)))
    with pytest.raises(ValueError, match=r"bias_q must have shape \(9,\)"):
        fi.linear_kl_divergence(hidden, head, hidden, head, bias_q=np.zeros(3))
    bad = target.copy()
    bad[2] = 9
    with pytest.raises(ValueError, match=r"target holds 9 at index \(2,\), outside \[0, 9\)"):
        fi.linear_cross_entropy_with_grad(hidden, head, bad)
    with pytest.raises(TypeError, match="target must hold integer class indices"):
        fi.linear_cross_entropy(hidden, head, target.astype(float))
    with pytest.raises(TypeError, match="hidden must be real"):
        fi.linear_cross_entropy(hidden + 0j, head, target)
    with pytest.raises(TypeError, match="head must be real"):
        fi.linear_softmax_entropy(hidden, head + 0j)
    with pytest.raises(ValueError, match="reduction"):
        fi.linear_cross_entropy(hidden, head, target, reduction="avg")
    with pytest.raises(ValueError, match="temperature"):
        fi.linear_softmax_entropy(hidden, head, temperature=0.0)
    with pytest.raises(ValueError, match="label_smoothing"):
        fi.linear_cross_entropy(hidden, head, target, label_smoothing=1.5)
    with pytest.raises(ValueError, match="base"):
        fi.linear_kl_divergence(hidden, head, hidden, head, base=1)


def test_inputs_unmodified_and_scalar_types():
    hidden, head, bias, target, weight = make_model(np.float32, seed=14)
    arrays = [hidden, head, bias, target, weight]
    for a in arrays:
        a.flags.writeable = False
    before = [a.tobytes() for a in arrays]
    assert type(fi.linear_cross_entropy(hidden, head, target, bias=bias, weight=weight)) is float
    loss, *_ = fi.linear_cross_entropy_with_grad(hidden, head, target, bias=bias, weight=weight, reduction="sum")
    assert type(loss) is float
    assert type(fi.linear_perplexity(hidden, head, target)) is float
    assert type(fi.linear_kl_divergence(hidden, head, hidden, head, reduction="sum")) is float
    assert [a.tobytes() for a in arrays] == before


# ----------------------------------------------------------------------------- threads and memory


def _all_results(hidden, head, bias, target, hidden_q, head_q):
    out = list(fi.linear_cross_entropy_with_grad(hidden, head, target, bias=bias, ignore_index=-1,
                                                 label_smoothing=0.1, reduction="none"))
    out += [fi.linear_softmax_entropy(hidden, head, bias=bias),
            fi.linear_kl_divergence(hidden, head, hidden_q, head_q, bias_p=bias),
            fi.linear_cross_entropy(hidden, head, target, bias=bias, ignore_index=-1)]
    out += list(_linear.linear_report(hidden, head, target, bias=bias, hidden_q=hidden_q, head_q=head_q,
                                      ignore_index=-1).values())
    return [np.asarray(a).tobytes() for a in out]


def _blas_threads():
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("n_rows", [3, 300])
def test_bitwise_identical_for_any_thread_count(dtype, n_rows, blocking):
    _check_bitwise(dtype, n_rows)


@pytest.mark.parametrize("dtype", FLOATS)
def test_bitwise_identical_for_any_thread_count_many_row_blocks(dtype):
    _check_bitwise(dtype, 1024)   # 16 row blocks of 64 with the default blocking: no vocabulary groups


def _check_bitwise(dtype, n_rows):
    hidden, head, bias, target, _ = make_model(dtype, n_rows=n_rows, d=48, n_vocab=1100, seed=15)
    target[::7] = -1
    rng = np.random.default_rng(16)
    hidden_q = rng.standard_normal((n_rows, 20)).astype(dtype)
    head_q = rng.standard_normal((1100, 20)).astype(dtype)
    blas_before = _blas_threads()
    expected = _all_results(hidden, head, bias, target, hidden_q, head_q)
    for api in ("openmp", "blas", None):
        for limit in (1, 2):
            with threadpool_limits(limits=limit, user_api=api):
                assert _all_results(hidden, head, bias, target, hidden_q, head_q) == expected, (api, limit)
    assert _blas_threads() == blas_before  # the BLAS is handed back its thread count


def test_concurrent_calls_from_python_threads():
    hidden, head, bias, target, _ = make_model(np.float32, n_rows=400, d=32, n_vocab=3000, seed=17)
    expected = fi.linear_cross_entropy_with_grad(hidden, head, target, bias=bias, label_smoothing=0.1)
    blas_before = _blas_threads()
    errors = []

    def work():
        for _ in range(5):
            got = fi.linear_cross_entropy_with_grad(hidden, head, target, bias=bias, label_smoothing=0.1)
            if not all(np.asarray(a).tobytes() == np.asarray(b).tobytes() for a, b in zip(got, expected)):
                errors.append("differs")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads) and not errors
    assert _blas_threads() == blas_before


def test_memory_does_not_grow_with_rows_times_vocabulary():
    """4096 rows x 50,000 vocabulary entries: the logits alone would be 781 MiB of float32."""
    from fastinfo._bench import PeakMemory

    memory = PeakMemory()
    if not memory.method.startswith("VmHWM"):
        pytest.skip(f"exact peak memory needs /proc/self/clear_refs (method: {memory.method})")
    rng = np.random.default_rng(18)
    hidden = rng.standard_normal((4096, 64), dtype=np.float32)
    head = rng.standard_normal((50_000, 64), dtype=np.float32) * 0.1
    target = rng.integers(0, 50_000, 4096)
    fi.linear_cross_entropy(hidden[:16], head, target[:16])  # first-call imports
    value, peak = memory.measure(lambda: fi.linear_cross_entropy(hidden, head, target))
    assert np.isfinite(value)
    assert peak < 48 * 2**20, f"peak extra memory {peak / 2**20:.1f} MiB"
    _, peak = memory.measure(lambda: fi.linear_softmax_entropy(hidden, head))
    assert peak < 48 * 2**20, f"entropy: peak extra memory {peak / 2**20:.1f} MiB"
