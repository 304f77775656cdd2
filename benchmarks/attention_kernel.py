"""The cpu device's attention kernel: its bf16 products (vdpbf16ps, precision bf16 on CPUs
with AVX512_BF16) and its fp32 AVX-512 loops against its BLAS path (and torch's SDPA), one
encoder layer's attention at a time.

    python benchmarks/attention_kernel.py [--frames 1500] [--heads 8] [--repeat 20]

Prints the CPU's model and flags, then per path the best and median time of one layer's
attention (all heads, all query tiles, on torch's threads) and its GFLOP/s (4 * T^2 * D
multiply-adds counted as 2 flops each), and the ratios of the medians (all paths run
interleaved, so drift in the machine's speed hits them alike). The bf16 path's max-abs
difference from the fp32 loops' output is printed too.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from npu_whisper_app.devices import cpu_native  # noqa: E402
from npu_whisper_app.devices.base import TILE  # noqa: E402
from npu_whisper_app.devices.cpuinfo import cpu_info  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=1500)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--head-width", type=int, default=64)
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    kernel = cpu_native.load_attention_kernel()
    if kernel is None:
        print(f"the attention kernel is not available: {cpu_native.kernel_status()}")
        return 1
    t, h, d = args.frames, args.heads, args.head_width
    qkv = torch.randn(t, 3 * h * d)
    n_tiles = -(-t // TILE)
    out = torch.empty(t, h * d)
    times = torch.empty(h, 1 + n_tiles, 2, dtype=torch.int64)
    flops = 4 * t * t * h * d

    out_bf16 = torch.empty(t, h * d)

    def bf16() -> None:
        kernel.attention(qkv, h, TILE, 0, out_bf16, times, True, True)

    def avx512() -> None:
        kernel.attention(qkv, h, TILE, 0, out, times, True)

    def blas() -> None:
        kernel.attention(qkv, h, TILE, 0, out, times, False)

    def sdpa() -> None:
        s = qkv.view(t, 3, h, d).permute(1, 2, 0, 3)
        torch.nn.functional.scaled_dot_product_attention(s[0], s[1], s[2])

    paths = {"bf16 dpbf16": bf16, "avx512 loops": avx512, "blas sgemm": blas, "torch sdpa": sdpa}
    if not kernel.has_fused():
        del paths["avx512 loops"]
    if not kernel.has_bf16() or d != 64:
        del paths["bf16 dpbf16"]
    info = cpu_info()
    wanted = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")
    print(f"CPU: {info.model_name or 'unknown'} · flags {' '.join(f for f in wanted if f in info.flags) or '(none of interest)'}")
    print(f"kernel: fp32 avx512 loops {'yes' if kernel.has_fused() else 'no'}, bf16 products {'yes' if kernel.has_bf16() else 'no'}")
    results: dict[str, list[float]] = {k: [] for k in paths}
    for f in paths.values():
        f()
    for _ in range(args.repeat):  # interleaved, so drift in the machine's speed hits all alike
        for name, f in paths.items():
            t0 = time.perf_counter()
            f()
            results[name].append(time.perf_counter() - t0)
    print(f"attention, {t} frames x {h} heads x {d}, {torch.get_num_threads()} threads, best (median) of {args.repeat}")
    for name, ts in results.items():
        print(f"  {name:13} {min(ts) * 1e3:7.2f} ms ({statistics.median(ts) * 1e3:7.2f})  {flops / min(ts) / 1e9:6.1f} GFLOP/s")
    med = {k: statistics.median(v) for k, v in results.items()}
    if "avx512 loops" in med:
        a = med["avx512 loops"]
        print(f"  blas / avx512 loops: {med['blas sgemm'] / a:.2f}x; sdpa / avx512 loops: {med['torch sdpa'] / a:.2f}x (medians)")
    if "bf16 dpbf16" in med:
        b = med["bf16 dpbf16"]
        fp32 = "avx512 loops" if "avx512 loops" in med else "blas sgemm"
        print(f"  {fp32} / bf16 dpbf16: {med[fp32] / b:.2f}x (medians); bf16 vs fp32 output max-abs {(out_bf16 - out).abs().max().item():.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
