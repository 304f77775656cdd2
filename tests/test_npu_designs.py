"""The design check (kernels/check): every IRON design of tiny.en and base fits npu1, and the
designs from before issue #12 fail it for the reasons the review gave."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernels.check import design_check as dc
from kernels.check.limits import NPU1, NPU2
from npu_whisper_app.devices.xrt_manifest import MODEL_DIMS

ROOT = Path(__file__).resolve().parents[1]
KERNELS = ROOT / "kernels"
OLD = ROOT / "tests" / "fixtures" / "old_kernels"


def model_designs(name: str) -> list[tuple[str, tuple]]:
    """(design file, builder arguments) for every kernel one 30 s window of ``name`` runs."""
    n_mels, n_ctx, d, h = MODEL_DIMS[name]
    t = -(-n_ctx // 256) * 256  # frames padded to whole 4 x 64-row blocks
    mel = -(-2 * n_ctx // 256) * 256
    return [
        ("gemm/gemm.py", (mel, 256, d, True)),  # conv1 (K = 3 * 80 -> 256)
        ("gemm/gemm.py", (t, 3 * d, d, True)),  # conv2
        ("gemm/gemm.py", (t, d, 3 * d, False)),  # q/k/v
        ("gemm/gemm.py", (t, d, d, False)),  # out
        ("gemm/gemm.py", (t, d, 4 * d, True)),  # fc1 + GELU
        ("gemm/gemm.py", (t, 4 * d, d, False)),  # fc2
        ("attention/attention.py", (h, t)),
        ("layernorm/layernorm.py", (t, d)),
    ]


@pytest.mark.parametrize("model", ["tiny", "base"])
def test_every_kernel_of_the_model_fits_npu1(model: str) -> None:
    for path, args in model_designs(model):
        errors, usage = dc.check_design(dc.build(KERNELS / path, "design", *args))
        assert errors == [], (path, args, errors)
        assert usage.cores == 16 and usage.columns == 4  # the whole npu1 array


def test_model_uses_three_xclbins() -> None:
    """One xclbin per kernel family: gemm (all shapes, runtime parameters), attention, layernorm."""
    for model in ("tiny", "base"):
        families = {path for path, _ in model_designs(model)}
        assert len(families) == 3 <= NPU1.max_contexts <= NPU1.hwctx_limit


def test_designs_build_for_npu2_too() -> None:
    for path, args in model_designs("base"):
        design = dc.build(KERNELS / path, "design", *args, device="npu2")
        assert design.device.generation == "npu2"
        errors, _ = dc.check_design(design, NPU2)
        assert errors == [], (path, errors)


# -- the check fails where the hardware would ----------------------------------------------


def lenient_build(path: Path, fn: str, *args):
    """Build an old design accepting its non-existent ``offset=/sizes=/strides=`` keywords,
    to show what it would hit next."""
    with dc.iron_double():
        import aie.iron._model as model

        model.LENIENT = True
        return getattr(dc.load_module(path), fn)(*args)


def test_old_designs_do_not_get_past_the_iron_api() -> None:
    with pytest.raises(TypeError) as e:
        dc.build(OLD / "gemm.py", "gemm", 1536, 512, 512, 64, 64, 32, False)
    assert "unexpected keyword argument 'offset'" in str(e.value)
    for f, fn, args in [("layernorm.py", "layernorm", (1536, 512)), ("gelu.py", "gelu", (1536, 2048))]:
        with pytest.raises(TypeError, match="unexpected keyword argument 'offset'"):
            dc.build(OLD / f, fn, *args)
    with pytest.raises(TypeError, match=r"fa_step_bf16 argument 4: an scf.for index value"):
        dc.build(OLD / "attention.py", "attention", 1536, 64)


def test_old_designs_exceed_the_hardware_limits() -> None:
    errs, _ = dc.check_design(lenient_build(OLD / "gemm.py", "gemm", 1536, 512, 2048, 64, 64, 32, True), kernels_root=OLD)
    text = "\n".join(errs)
    assert "core tile Tile(0, 2): 3 input DMA channels (S2MM) in use, it has 2" in text and "bias_0" in text
    assert "shim tile Tile(0, 0): 3 output DMA channels (MM2S) in use, it has 2" in text
    assert "runtime DMA tasks in flight at once, it has 16 buffer descriptors" in text

    errs, _ = dc.check_design(lenient_build(OLD / "attention.py", "attention", 1536, 64), kernels_root=OLD)
    text = "\n".join(errs)
    assert "shim tile Tile(0, 0): 4 output DMA channels (MM2S) in use, it has 2" in text
    assert "core tile Tile(0, 2): 4 input DMA channels (S2MM) in use, it has 2" in text
    assert "fa_step_bf16 (aie2/flash_attn.cc) keeps 6144 B of arrays on the stack, the Worker's stack is 1024 B" in text

    errs, _ = dc.check_design(lenient_build(OLD / "layernorm.py", "layernorm", 1536, 512), kernels_root=OLD)
    text = "\n".join(errs)
    assert "69.0 KiB of buffers (incl. double buffers and the stack), it has 64.0 KiB" in text
    assert "4 input DMA channels (S2MM) in use, it has 2" in text

    errs, _ = dc.check_design(lenient_build(OLD / "gelu.py", "gelu", 1536, 2048), kernels_root=OLD)
    text = "\n".join(errs)
    assert "257.0 KiB of buffers" in text and "innermost size 1024 words exceeds the [0:1023] range" in text


def test_check_catches_a_third_input_and_an_overflow_in_a_new_design(tmp_path) -> None:
    """Mutate today's gemm: a depth-4 A fifo overflows the core; an extra bias fifo is a 3rd input."""
    src = (KERNELS / "gemm" / "gemm.py").read_text()
    deep = tmp_path / "deep.py"
    deep.write_text(src.replace('A_l2l1[col] = a.cons().split([0], obj_types=[A_l1], names=[f"A_L2L1_{col}"],',
                                'A_l2l1[col] = a.cons().split([0], obj_types=[A_l1], names=[f"A_L2L1_{col}"], depths=[6],'))
    errs, _ = dc.check_design(dc.build(deep, "design", 1536, 512, 512))
    assert any("KiB of buffers" in e and "it has 64.0 KiB" in e for e in errs), errs
    third = tmp_path / "third.py"
    third.write_text(src.replace("    workers = [Worker(core_fn, [A_l2l1[row].cons(), B_l2l1[col].cons(),",
                                 "    extra = [ObjectFifo(B_l1, name=f'bias_{c}') for c in range(COLS)]\n"
                                 "    for c in range(COLS):\n        extra[c].prod().endpoint = None\n"
                                 "    workers = [Worker(core_fn, [A_l2l1[row].cons(), B_l2l1[col].cons(),")
                     .replace("def core_fn(in_a, in_b, out_c, rtp, barrier, zero, matmul, epilogue):",
                              "def core_fn(in_a, in_b, out_c, rtp, barrier, zero, matmul, epilogue, bias=None):")
                     .replace("barriers[row][col], zero, matmul, epilogue], placement",
                              "barriers[row][col], zero, matmul, epilogue, extra[col].cons()], placement")
                     .replace("        rt.inline_ops(set_rtps",
                              "        for c in range(COLS):\n            rt.fill(extra[c].prod(), B, task_group=None, placement=Tile(c, 0))\n"
                              "        rt.inline_ops(set_rtps"))
    errs, _ = dc.check_design(dc.build(third, "design", 1536, 512, 512))
    assert any("3 input DMA channels (S2MM) in use, it has 2" in e for e in errs), errs
    assert any("3 output DMA channels (MM2S) in use, it has 2" in e for e in errs), errs


def test_driver_admits_the_three_contexts_and_refused_the_old_eight() -> None:
    from kernels.check.xdna import ContextRefused, admit

    assert admit([4, 4, 4], NPU1) == [(1, 4)] * 3  # all share the first 4-column partition
    with pytest.raises(ContextRefused, match="allows 6 hardware contexts"):
        admit([4] * 8, NPU1)  # the old host: one context per xclbin, 8 for base
    assert admit([1, 2], NPU1) == [(1, 1), (2, 2)]  # disjoint ranges while columns are free
    with pytest.raises(ContextRefused, match="no free 2-column range"):
        admit([4, 2], NPU1)


# -- the build files describe these designs --------------------------------------------------


def test_checked_in_manifest_is_what_the_designs_give() -> None:
    """kernels/manifest.json (taps, runtime parameters, dims, files) is regenerated from the
    designs; a design edited without regenerating it fails here."""
    import json

    from npu_whisper_app.devices.xrt_manifest import build_manifest

    fresh = build_manifest([MODEL_DIMS["tiny"], MODEL_DIMS["base"]]).to_dict()
    assert json.loads((KERNELS / "manifest.json").read_text()) == json.loads(json.dumps(fresh))
    assert {k["xclbin"] for k in fresh["kernels"]} == {"gemm.xclbin", "attention.xclbin", "layernorm_n384.xclbin",
                                                        "layernorm_n512.xclbin"}


def test_makefile_builds_the_objects_the_designs_link() -> None:
    import re

    mk = (KERNELS / "Makefile").read_text()
    rules = dict(re.findall(r"^\$\(BUILD\)/(\S+\.o): (aie2/\S+\.cc)", mk, re.M))
    objs = set(re.search(r"^OBJS := (.*)$", mk, re.M).group(1).replace("$(BUILD)/", "").split())
    assert objs == set(rules)
    assert all((KERNELS / src).is_file() for src in rules.values()), rules
    for old in ("mm_bf16.cc", "flash_attn.cc", "layernorm.cc", "gelu.cc"):
        assert old not in mk and not (KERNELS / "aie2" / old).exists()
    linked = set()
    for path, args in model_designs("base"):
        design = dc.build(KERNELS / path, "design", *args)
        linked |= {k.bin_name for w in design.workers for k in w.kernels}
    assert linked == objs
