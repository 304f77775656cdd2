"""Make real media files for tests: speech from espeak-ng, encoded by PyAV into many containers."""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np

SR = 16000
EVAL_DEV = Path(__file__).resolve().parents[1].parent / "shared" / "eval-dev"


def espeak(text: str, path: Path, speed: int = 150) -> Path:
    """Synthesise ``text`` to a 16 kHz mono WAV with Debian's espeak-ng."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed (scripts/setup.sh installs it)")
    raw = path.with_suffix(".22k.wav")
    subprocess.run([exe, "-v", "en-us", "-s", str(speed), "-w", str(raw), text], check=True)
    from npu_whisper_app.audio.decode import load_audio

    write_wav(path, load_audio(raw))
    raw.unlink()
    return path


def write_wav(path: Path, audio: np.ndarray, sr: int = SR) -> Path:
    import wave

    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())
    return path


def encode(audio: np.ndarray, path: Path, codec: str, rate: int = 48000, with_video: bool = False) -> Path:
    """Encode mono float audio at 16 kHz into ``path`` (container from the suffix)."""
    import av

    with av.open(str(path), "w") as out:
        vstream = None
        if with_video:
            vstream = out.add_stream("mpeg4", rate=10)
            vstream.width, vstream.height, vstream.pix_fmt = 64, 48, "yuv420p"
        astream = out.add_stream(codec, rate=rate)
        astream.layout = "stereo" if codec in ("aac", "libopus") else "mono"
        resampler = av.AudioResampler(format=astream.format.name if astream.format else "fltp", layout=astream.layout.name, rate=rate)
        frame_len = 1024
        pts = 0
        for start in range(0, len(audio), frame_len):
            chunk = audio[start : start + frame_len].astype(np.float32)
            frame = av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
            frame.sample_rate = SR
            frame.pts = pts
            frame.time_base = Fraction(1, SR)
            pts += len(chunk)
            for f in resampler.resample(frame):
                for packet in astream.encode(f):
                    out.mux(packet)
        for f in resampler.resample(None):
            for packet in astream.encode(f):
                out.mux(packet)
        for packet in astream.encode(None):
            out.mux(packet)
        if vstream is not None:
            n = int(len(audio) / SR * 10)
            for i in range(max(n, 1)):
                img = np.full((48, 64, 3), (i * 7) % 255, dtype=np.uint8)
                vf = av.VideoFrame.from_ndarray(img, format="rgb24")
                vf.pts = i
                for packet in vstream.encode(vf):
                    out.mux(packet)
            for packet in vstream.encode(None):
                out.mux(packet)
    return path


def write_long(audio: np.ndarray, path: Path, seconds: float, sr: int = SR) -> Path:
    """``audio`` repeated (with 0.5 s gaps) to ``seconds`` long, as a WAV (long test recordings)."""
    gap = np.zeros(sr // 2, np.float32)
    unit = np.concatenate([audio, gap])
    reps = int(np.ceil(seconds * sr / len(unit)))
    return write_wav(path, np.tile(unit, reps)[: int(seconds * sr)])
