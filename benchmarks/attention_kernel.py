"""The cpu device's attention kernel: its AVX-512 loops against its BLAS path (and torch's
SDPA), one encoder layer's attention at a time.

    python benchmarks/attention_kernel.py [--frames 1500] [--heads 8] [--repeat 20]

Prints, per path, the best and median time of one layer's attention (all heads, all
query tiles, on torch's threads) and its GFLOP/s (4 * T^2 * D multiply-adds counted as 2
flops each), and the ratio of the BLAS path's time to the AVX-512 loops'.
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

    def avx512() -> None:
        kernel.attention(qkv, h, TILE, 0, out, times, True)

    def blas() -> None:
        kernel.attention(qkv, h, TILE, 0, out, times, False)

    def sdpa() -> None:
        s = qkv.view(t, 3, h, d).permute(1, 2, 0, 3)
        torch.nn.functional.scaled_dot_product_attention(s[0], s[1], s[2])

    paths = {"avx512 loops": avx512, "blas sgemm": blas, "torch sdpa": sdpa}
    if not kernel.has_fused():
        del paths["avx512 loops"]
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
    if "avx512 loops" in results:
        a = statistics.median(results["avx512 loops"])
        print(f"  blas / avx512 loops: {statistics.median(results['blas sgemm']) / a:.2f}x; sdpa / avx512 loops: {statistics.median(results['torch sdpa']) / a:.2f}x (medians)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
