"""Encoder variants (ours fp32 / bf16 / single-thread) against openai-whisper's, alternating.

    PYTHONPATH=. python benchmarks/encoder_variants.py base 8 [bf16] [nopool]
"""
import sys, time, statistics, torch, whisper

from npu_whisper_app.model.resolve import load_whisper_model
from npu_whisper_app.model.encoder import TiledEncoder
from npu_whisper_app.devices import cpu as cpumod
from npu_whisper_app.devices.cpu import CpuDevice
from npu_whisper_app.bench import synthetic_audio, mel_windows
name=sys.argv[1] if len(sys.argv)>1 else "base"
rounds=int(sys.argv[2]) if len(sys.argv)>2 else 8
m=load_whisper_model(name)
mel=mel_windows(synthetic_audio(30),1,m.dims.n_mels)[0][None]
cfgs={}
cfgs["openai"]=m.encoder
cfgs["ours fp32"]=TiledEncoder(m.encoder,m.dims.n_audio_head,CpuDevice())
if "bf16" in sys.argv: cfgs["ours bf16"]=TiledEncoder(m.encoder,m.dims.n_audio_head,CpuDevice(precision="bf16"))
if "int8" in sys.argv: cfgs["ours int8"]=TiledEncoder(m.encoder,m.dims.n_audio_head,CpuDevice(precision="int8"))
if "nopool" in sys.argv: cfgs["ours nopool"]=TiledEncoder(m.encoder,m.dims.n_audio_head,CpuDevice(threads=1))
for arg in sys.argv[3:]:
    if arg.startswith("chunk"):  # e.g. chunk750: rows per gemm work item
        d=CpuDevice(); d.chunk_rows=int(arg[5:]); cfgs["ours "+arg]=TiledEncoder(m.encoder,m.dims.n_audio_head,d)
times={k:[] for k in cfgs}
with torch.inference_mode():
    ref=m.encoder(mel)
    for k,e in cfgs.items():
        if k!="openai": e._cache=None
        o=e(mel); print(k,"max err", float((o-ref).abs().max()))
    for r in range(rounds):
        for k,e in (cfgs.items() if r%2==0 else reversed(cfgs.items())):
            if k!="openai": e._cache=None
            t=time.perf_counter(); e(mel); times[k].append(time.perf_counter()-t)
import os
print("load", os.getloadavg())
for k,v in times.items():
    print(f"{k:14s} min {min(v):.3f} med {statistics.median(v):.3f}  ratio(openai/this) min {min(times['openai'])/min(v):.2f} med {statistics.median(times['openai'])/statistics.median(v):.2f}")
