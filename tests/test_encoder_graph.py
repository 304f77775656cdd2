"""The tiled encoder graph on the cpu device against openai-whisper's AudioEncoder."""

from __future__ import annotations

import math

import pytest
import torch
from whisper.model import AudioEncoder

from npu_whisper_app.devices.base import KernelError
from npu_whisper_app.devices.cpu import CpuDevice
from npu_whisper_app.jobs import JobContext
from npu_whisper_app.model.encoder import Cancelled, TiledEncoder
from npu_whisper_app.profiling import LiveProfile, Recorder, summarize_by_layer, summary_dict


@pytest.fixture(scope="module")
def reference() -> AudioEncoder:
    torch.manual_seed(0)
    enc = AudioEncoder(n_mels=80, n_ctx=1500, n_state=128, n_head=2, n_layer=2).eval()
    with torch.no_grad():
        for p in enc.parameters():
            p.normal_(0, 0.08)
    return enc


def test_matches_openai_whisper_encoder(reference: AudioEncoder) -> None:
    mel = torch.randn(1, 80, 3000)
    enc = TiledEncoder(reference, 2, CpuDevice(Recorder(), precision="fp32"))
    with torch.no_grad():
        assert (enc(mel) - reference(mel)).abs().max().item() < 1e-4


def test_one_dispatch_per_head_and_query_tile(reference: AudioEncoder) -> None:
    rec = Recorder()
    enc = TiledEncoder(reference, 2, CpuDevice(rec))
    with torch.no_grad():
        enc(torch.randn(1, 80, 3000))
    tiles = math.ceil(1500 / 64)
    attn = [e for e in rec.events if e.op == "attention"]
    assert len(attn) == 2 * 2 * tiles  # layers x heads x tiles
    assert {(e.layer, e.head, e.tile) for e in attn} == {(layer, h, t) for layer in range(2) for h in range(2) for t in range(tiles)}
    assert all(e.end_ns >= e.start_ns and e.flops > 0 for e in attn)
    live = LiveProfile()
    live.add(rec.events)
    grid = live.tile_matrix("job", layer=1)  # what the GUI's heatmap shows
    assert grid.shape == (2, tiles) and (grid > 0).all()
    layers = summarize_by_layer(rec.events)
    assert set(layers) == {-1, 0, 1, 2} and layers[0]["attention"] > 0 and layers[0]["mlp"] > 0
    s = summary_dict(rec.events)
    assert s["events"] == len(rec.events) and s["flops"] > 0


def test_attention_sees_all_frames() -> None:
    """A key far outside the query's own 64-frame tile must change the result."""
    dev = CpuDevice(Recorder(), precision="fp32")
    q = torch.zeros(1, 1500, 64)
    k = torch.zeros(1, 1500, 64)
    v = torch.zeros(1, 1500, 64)
    q[0, :64, 0] = 1.0
    k[0, 1400, 0] = 50.0  # only frame 1400 matches queries of tile 0
    v[0, 1400] = 3.0
    out = dev.attention(q, k, v)
    assert out[0, 0, 0].item() > 0.5  # block-diagonal attention would give 0
    # scale is 1/sqrt(64): with logit 50/8 = 6.25 against 1499 zeros
    expected = 3.0 * math.exp(6.25) / (math.exp(6.25) + 1499)
    assert abs(out[0, 0, 0].item() - expected) < 1e-4


def test_same_mel_is_encoded_once(reference: AudioEncoder) -> None:
    rec = Recorder()
    enc = TiledEncoder(reference, 2, CpuDevice(rec))
    mel = torch.randn(1, 80, 3000)
    with torch.no_grad():
        a = enc(mel)
        n = len(rec.events)
        b = enc(mel.clone())  # openai-whisper re-encodes for language detection / fallback
    assert len(rec.events) == n and torch.equal(a, b) and enc.windows_done == 1


class FlakyDevice(CpuDevice):
    name = "flaky"

    def __init__(self, recorder: Recorder, fail_at_layer: int) -> None:
        super().__init__(recorder)
        self.fail_at_layer = fail_at_layer

    def attention(self, q, k, v, *, op="attention"):
        if self.recorder.layer == self.fail_at_layer:
            raise KernelError("attention kernel ended in ERT_CMD_STATE_ERROR")
        return super().attention(q, k, v, op=op)


def test_device_failure_falls_back_and_finishes(reference: AudioEncoder) -> None:
    rec = Recorder()
    told: list[str] = []
    enc = TiledEncoder(reference, 2, FlakyDevice(rec, 1), fallback=lambda: CpuDevice(precision="fp32"), on_fallback=told.append)
    mel = torch.randn(1, 80, 3000)
    with torch.no_grad():
        out = enc(mel)
        assert (out - reference(mel)).abs().max().item() < 1e-4
    assert told and "ERT_CMD_STATE_ERROR" in told[0] and "'cpu'" in told[0]
    assert {e.device for e in rec.events} >= {"flaky", "cpu"}
    assert enc.device.name == "cpu"


def test_failure_without_fallback_raises(reference: AudioEncoder) -> None:
    enc = TiledEncoder(reference, 2, FlakyDevice(Recorder(), 0))
    with pytest.raises(KernelError), torch.no_grad():
        enc(torch.randn(1, 80, 3000))


def test_cancel_between_dispatches(reference: AudioEncoder) -> None:
    rec = Recorder()
    enc = TiledEncoder(reference, 2, CpuDevice(rec))
    ctx = JobContext(should_stop=lambda: len(rec._pending) + len(rec.events) > 3)
    with pytest.raises(Cancelled), torch.no_grad(), enc.job(ctx):
        enc(torch.randn(1, 80, 3000))
    assert not any(e.op == "ln_post" for e in rec.events)


def test_listeners_get_batches_per_layer(reference: AudioEncoder) -> None:
    rec = Recorder()
    batches: list[int] = []
    rec.add_listener(lambda batch: batches.append(len(batch)))
    enc = TiledEncoder(reference, 2, CpuDevice(rec))
    with torch.no_grad():
        enc(torch.randn(1, 80, 3000))
    # at least one batch per stage (stem, 2 layers, ln_post), more when a stage takes > 50 ms
    assert len(batches) >= 4 and sum(batches) == len(rec.events)
