"""The teacher cache holds what the online teacher would compute, view by view.

The KD speed-up rests on this: a student trained on ``CachedTeacher`` must see exactly
the logits ``OnlineTeacher`` would give it for the same (image, view). Expected values
come from independent constructions (pixel loops, running the model), never from the
code under test.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from torch import nn

from selective_kd.data.augment import Views
from selective_kd.distill.teacher import (
    CachedTeacher,
    OnlineTeacher,
    cache_key,
    compute_view_logits,
    load_or_build_cache,
)
from selective_kd.engine import Batch, Runtime
from selective_kd.errors import UserError
from selective_kd.models import build_model

CPU = Runtime(torch.device("cpu"), None, channels_last=False, compile=False)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run faster on one thread, and one thread cannot be slowed by OpenMP
    oversubscription when other processes share the cores (seen here: 30× slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _teacher(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = build_model("resnet18", 10, 3, "cifar", width=0.125)
    # Non-trivial BatchNorm statistics, so eval mode is not the identity on them.
    with torch.no_grad():
        model.train()
        model(torch.randn(32, 3, 16, 16))
    return model.eval()


# --------------------------------------------------------------------------- (1) table = online teacher


@pytest.mark.parametrize("channels_last", [False, True])
def test_view_logits_equal_the_online_teacher_on_each_view(channels_last: bool) -> None:
    model = _teacher()
    views = Views(2, True)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 3, 16, 16, generator=g)
    runtime = Runtime(torch.device("cpu"), None, channels_last=channels_last, compile=False)
    table = compute_view_logits(model, x, views, runtime, batch_size=4)  # 4 does not divide 6: a short batch too

    assert table.shape == (6, views.count, 10) and table.dtype == torch.float16
    assert not model.training
    # Views must matter, or equality below would prove nothing.
    assert not torch.allclose(table[:, views.identity].float(), table[:, views.identity + 1].float(), atol=1e-2)

    samples = torch.randint(6, (25,), generator=g)
    picked = torch.randint(views.count, (25,), generator=g)
    online = OnlineTeacher(model)
    for i, v in zip(samples.tolist(), picked.tolist()):
        xv = views.apply(x[i : i + 1], torch.tensor([v]))
        expected = online(Batch(xv, torch.zeros(1, dtype=torch.long), torch.tensor([i]), torch.tensor([v])))
        torch.testing.assert_close(table[i, v].float(), expected[0], rtol=2e-3, atol=2e-3, msg=f"sample {i}, view {v}")


def test_view_logits_without_views_are_the_plain_logits() -> None:
    model = _teacher()
    x = torch.randn(5, 3, 8, 8)
    table = compute_view_logits(model, x, None, CPU, batch_size=2)
    assert table.shape == (5, 1, 10)
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(table[:, 0].float(), expected, rtol=2e-3, atol=2e-3)


# --------------------------------------------------------------------------- (2) lookup


def test_cached_teacher_returns_exactly_the_table_rows() -> None:
    g = torch.Generator().manual_seed(2)
    table = torch.randn(20, 162, 10, generator=g).to(torch.float16)
    idx = torch.randint(20, (16,), generator=g)
    view = torch.randint(162, (16,), generator=g)
    out = CachedTeacher(table)(Batch(torch.empty(16, 3, 32, 32), torch.zeros(16, dtype=torch.long), idx, view))
    assert out.dtype == torch.float32 and out.shape == (16, 10)
    for k in range(16):
        assert torch.equal(out[k], table[idx[k], view[k]].float()), k


def test_cached_teacher_without_views_reads_the_only_column() -> None:
    table = torch.randn(7, 1, 10).to(torch.float16)
    idx = torch.tensor([6, 0, 3])
    out = CachedTeacher(table)(Batch(torch.empty(3, 3, 8, 8), torch.zeros(3, dtype=torch.long), idx, None))
    assert torch.equal(out, table[idx, 0].float())


# --------------------------------------------------------------------------- (3) views are exact


def _expected_view(x: torch.Tensor, dy: int, dx: int, flip: bool) -> torch.Tensor:
    """shift(flip(x), dy, dx) by explicit pixel loops: content moves down dy, right dx; zero fill."""
    c, h, w = x.shape
    out = torch.zeros_like(x)
    for i in range(h):
        for j in range(w):
            si, sj = i - dy, j - dx  # the pixel of flip(x) that lands on (i, j)
            if 0 <= si < h and 0 <= sj < w:
                out[:, i, j] = x[:, si, w - 1 - sj] if flip else x[:, si, sj]
    return out


def test_every_view_is_the_explicit_shift_of_the_flip() -> None:
    views = Views(2, True)
    x = torch.arange(1, 2 * 5 * 6 + 1, dtype=torch.float32).reshape(1, 2, 5, 6)  # distinct values, H ≠ W
    ids = torch.arange(views.count)
    dy, dx, flip = views.decode(ids)
    out = views.apply(x.expand(views.count, -1, -1, -1), ids)  # every view in one batched call
    for v in range(views.count):
        expected = _expected_view(x[0], int(dy[v]), int(dx[v]), bool(flip[v]))
        assert torch.equal(out[v], expected), f"view {v}: dy={int(dy[v])} dx={int(dx[v])} flip={bool(flip[v])}"


def test_views_are_the_random_crops_of_the_padded_image() -> None:
    """The usual 'pad by r, crop at (top, left)' augmentation is the view with dy = r - top, dx = r - left."""
    r = 4
    views = Views(r, True)
    x = torch.randn(3, 3, 32, 32)
    for top, left, flip in [(0, 0, False), (8, 8, True), (3, 7, False), (4, 4, True), (8, 1, True)]:
        for img in x:
            base = torch.flip(img, dims=[2]) if flip else img
            crop = torch.nn.functional.pad(base, (r, r, r, r))[:, top : top + 32, left : left + 32]
            view = views.encode(torch.tensor([r - top]), torch.tensor([r - left]), torch.tensor([flip]))
            assert torch.equal(views.apply(img[None], view)[0], crop), (top, left, flip)


def test_identity_view_and_channels_last_are_kept() -> None:
    views = Views(4, True)
    assert views.count == 162
    x = torch.randn(4, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    out = views.apply(x, torch.full((4,), views.identity))
    assert torch.equal(out, x)
    assert out.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("padding,flip", [(0, False), (0, True), (1, False), (2, True), (4, True)])
def test_encode_decode_round_trip_covers_every_view_once(padding: int, flip: bool) -> None:
    views = Views(padding, flip)
    ids = torch.arange(views.count)
    dy, dx, fl = views.decode(ids)
    assert torch.equal(views.encode(dy, dx, fl), ids)
    assert int(dy.min()) == -padding and int(dy.max()) == padding
    assert int(dx.min()) == -padding and int(dx.max()) == padding
    assert bool(fl.any()) == flip
    triples = set(zip(dy.tolist(), dx.tolist(), fl.tolist()))
    assert len(triples) == views.count == (2 * padding + 1) ** 2 * (2 if flip else 1)
    d0, x0, f0 = views.decode(torch.tensor([views.identity]))
    assert (int(d0), int(x0), bool(f0)) == (0, 0, False)


# --------------------------------------------------------------------------- (4) on disk


def test_cache_is_built_once_then_reused(tmp_path) -> None:
    views = Views(1, True)
    x, y = torch.randn(4, 3, 8, 8), torch.arange(4)
    key = cache_key("teacher-digest", x, y, views, None)
    table = torch.randn(4, views.count, 10).to(torch.float16)
    calls = []

    def build() -> torch.Tensor:
        calls.append(1)
        return table.clone()

    first = load_or_build_cache(tmp_path, key, build)
    second = load_or_build_cache(tmp_path, key, build)
    assert len(calls) == 1
    assert torch.equal(first, table) and torch.equal(second, table)
    assert len(list(tmp_path.glob("*.npy"))) == 1

    other = cache_key("another-teacher", x, y, views, None)
    load_or_build_cache(tmp_path, other, build)
    assert len(calls) == 2, "another teacher must not reuse this cache"
    assert cache_key("teacher-digest", x + 1, y, views, None)["data"] != key["data"]
    assert cache_key("teacher-digest", x, y, Views(2, True), None) != key


def test_cache_with_an_edited_key_is_refused(tmp_path) -> None:
    views = Views(1, False)
    x, y = torch.randn(3, 3, 8, 8), torch.arange(3)
    key = cache_key("teacher-digest", x, y, views, None)
    load_or_build_cache(tmp_path, key, lambda: torch.zeros(3, views.count, 10, dtype=torch.float16))
    (meta,) = tmp_path.glob("*.json")
    recorded = json.loads(meta.read_text())
    recorded["key"]["padding"] = 4
    meta.write_text(json.dumps(recorded))

    def must_not_build() -> torch.Tensor:
        raise AssertionError("an edited cache must be refused, not rebuilt over")

    with pytest.raises(UserError, match="another teacher"):
        load_or_build_cache(tmp_path, key, must_not_build)


# --------------------------------------------------------------------------- (5) compiled = eager


def _compile_unavailable() -> str | None:
    if not torch._dynamo.is_dynamo_supported():
        return "torch.compile (dynamo) is not supported on this Python/platform"
    if not any(shutil.which(cc) for cc in ("gcc", "cc", "clang", "g++", "c++")):
        return "no C/C++ compiler found: inductor cannot build CPU kernels here"
    return None


@pytest.mark.slow
@pytest.mark.skipif(_compile_unavailable() is not None, reason=str(_compile_unavailable()))
def test_compiled_model_equals_eager() -> None:
    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10),
    )
    with torch.no_grad():
        model(torch.randn(16, 3, 8, 8))  # BatchNorm running statistics away from their defaults
    model.eval()
    x = torch.randn(6, 3, 8, 8)
    with torch.no_grad():
        eager = model(x)
        compiled = torch.compile(model)(x)
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)


def test_a_cache_file_that_is_not_a_numpy_array_is_refused(tmp_path: Path) -> None:
    import zipfile

    from selective_kd.distill.teacher import open_cache
    from selective_kd.errors import UserError

    npy, meta = tmp_path / "c.npy", tmp_path / "c.json"
    with zipfile.ZipFile(npy, "w") as zf:  # what np.load opens as an NpzFile, not an array
        zf.writestr("x.npy", b"")
    meta.write_text('{"key": {}, "shape": [1, 1, 1]}')
    with pytest.raises(UserError, match="delete it and it will be rebuilt"):
        open_cache(npy, meta, {})
