"""Command line: ``npu-whisper transcribe | listen | dictate | devices | bench | models``.

Option names and meanings follow openai-whisper's own CLI where it has them.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from .audio import SAMPLE_RATE
from .cli_dictate import add_dictate_parser, add_paste_option, listen_decoder, listen_paste_sink, run_dictate

DEFAULT_MODEL = "base"
FORMATS = ("txt", "vtt", "srt", "tsv", "json")


def _str2bool(value: str) -> bool:
    low = value.lower()
    if low in ("true", "1", "yes", "y", "on"):
        return True
    if low in ("false", "0", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {value!r}")


def _optional_int(value: str) -> int | None:
    return None if value == "None" else int(value)


def _optional_float(value: str) -> float | None:
    return None if value == "None" else float(value)


def _formats(value: str) -> list[str]:
    if value == "all":
        return list(FORMATS)
    names = [v.strip() for v in value.split(",") if v.strip()]
    bad = [n for n in names if n not in FORMATS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown format(s) {', '.join(bad) or value!r}; choose from {', '.join(FORMATS)} or all")
    return names


def _add_model_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=DEFAULT_MODEL, help="model name (tiny.en, base, ...), a .pt checkpoint or a CTranslate2 folder (default: %(default)s)")
    p.add_argument("--device", default="auto", help="encoder device: auto, cpu, xrt, ... (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="npu-whisper", description="Whisper with its encoder on an accelerator, timed per layer, op and tile.")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("transcribe", help="transcribe audio/video files")
    t.add_argument("audio", nargs="+", help="audio or video file(s)")
    _add_model_device(t)
    t.add_argument("--language", default=None, help="spoken language (e.g. en); detected when omitted")
    t.add_argument("--task", default="transcribe", choices=["transcribe", "translate"])
    t.add_argument("--word_timestamps", "--word-timestamps", type=_str2bool, nargs="?", const=True, default=False, help="word-level timestamps")
    t.add_argument("--output_dir", "--output-dir", "-o", default=None, help="write output files here (default: no files)")
    t.add_argument("--output_format", "--format", "-f", type=_formats, default=None, help="txt,vtt,srt,tsv,json or all (default: all when --output-dir is given)")
    t.add_argument("--profile", default=None, help="write every timing event to this file: our JSON with summaries, or a Chrome trace (see --profile-format)")
    t.add_argument(
        "--profile-format", "--profile_format", choices=["json", "chrome"], default=None,
        help="format of --profile: json (ours, with per-op/per-layer summaries) or chrome (Chrome trace / Perfetto JSON for "
        "ui.perfetto.dev or chrome://tracing); default: chrome for names ending .trace.json or .perfetto.json, else json",
    )
    t.add_argument("--temperature", type=float, default=0.0, help="temperature to use for sampling")
    t.add_argument("--temperature_increment_on_fallback", type=_optional_float, default=0.2, help="temperature increase on fallback; None disables fallback")
    t.add_argument("--best_of", type=_optional_int, default=5, help="candidates when sampling with non-zero temperature")
    t.add_argument("--beam_size", type=_optional_int, default=None, help="beams in beam search at temperature 0 (default: greedy)")
    t.add_argument("--patience", type=float, default=None)
    t.add_argument("--length_penalty", type=float, default=None)
    t.add_argument("--suppress_tokens", default="-1")
    t.add_argument("--initial_prompt", default=None)
    t.add_argument("--carry_initial_prompt", type=_str2bool, default=False)
    t.add_argument("--condition_on_previous_text", type=_str2bool, default=True)
    t.add_argument("--compression_ratio_threshold", type=_optional_float, default=2.4)
    t.add_argument("--logprob_threshold", type=_optional_float, default=-1.0)
    t.add_argument("--no_speech_threshold", type=_optional_float, default=0.6)
    t.add_argument("--clip_timestamps", default="0")
    t.add_argument("--hallucination_silence_threshold", type=_optional_float, default=None)
    t.add_argument("--highlight_words", type=_str2bool, default=False)
    t.add_argument("--max_line_width", type=_optional_int, default=None)
    t.add_argument("--max_line_count", type=_optional_int, default=None)
    t.add_argument("--max_words_per_line", type=_optional_int, default=None)
    t.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    t.add_argument("--progress", type=_str2bool, nargs="?", const=True, default=None, help="progress bar on stderr (default: for audio over 30 s)")
    t.add_argument("--precision", choices=["auto", "fp32", "bf16", "int8"], default=None, help="cpu device precision: auto (default: bf16 where the CPU has native bf16, else int8 on x86 with AVX2, else fp32; `devices` says which), fp32 (openai-whisper's numbers), bf16 (oneDNN, fp32 accumulation), int8 (per-channel weights, per-row activations, int32 accumulation)")
    t.add_argument("--batched", type=_str2bool, nargs="?", const=True, default=None, help="batched long-form mode: cut the audio at pauses (Silero VAD) into chunks of at most 30 s, decode them in batches, read files forward a block at a time; False: openai-whisper's sequential loop, its exact words (default: batched, unless --clip_timestamps, --hallucination_silence_threshold or --carry_initial_prompt asks for the sequential loop)")
    t.add_argument("--batch_size", "--batch-size", type=int, default=8, help="chunks decoded together in --batched mode (default: %(default)s)")
    _add_speed_options(t)

    ls = sub.add_parser("listen", help="live dictation: print each utterance as it is decided (microphone, or a recording played as one)")
    _add_model_device(ls)
    src = ls.add_mutually_exclusive_group()
    src.add_argument("--input-device", default=None, help="input device index or name (default: the system's default input)")
    src.add_argument("--input", default=None, metavar="FILE", help="play this recording into the pipeline as if it were the microphone")
    ls.add_argument("--speed", type=float, default=1.0, help="with --input: times real time (0: as fast as possible) (default: %(default)s)")
    ls.add_argument("--output", default=None, metavar="FILE", help="also append each final utterance to this text file")
    ls.add_argument("--language", default=None, help="spoken language (default: detected per utterance; English for .en models)")
    ls.add_argument("--prompt-previous", action=argparse.BooleanOptionalAction, default=False, help="give the previous utterances' text as the prompt (default: off; a prompt changes the words)")
    ls.add_argument("--partials", action=argparse.BooleanOptionalAction, default=None, help="show stable partial text on stderr (default: when stderr is a terminal)")
    ls.add_argument("--silence-ms", type=int, default=500, help="pause that ends an utterance (default: %(default)s)")
    ls.add_argument("--audio-ctx", choices=["fit", "full"], default="fit", help="the partials' encoder window: fit the utterance (fast) or Whisper's full 30 s (default: %(default)s)")
    ls.add_argument("--final", choices=["transcribe", "window"], default="transcribe", help="final decode of an utterance: exactly as a file is transcribed (30 s window, timestamps, fallback: the file's words) or on the partials' fitted window (~0.15 s sooner, the words can differ) (default: %(default)s)")
    ls.add_argument("--recording", default=None, metavar="WAV", help="where to save the session's audio (default: a new file in the user data folder)")
    ls.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    add_paste_option(ls)
    add_dictate_parser(sub)

    d = sub.add_parser("devices", help="list devices and which one auto picks")
    d.add_argument("--json", action="store_true", help="print one JSON object")

    m = sub.add_parser("models", help="list models and where their weights come from")
    m.add_argument("--json", action="store_true")

    b = sub.add_parser("bench", help="time our encoder against openai-whisper's on the same 30 s windows")
    _add_model_device(b)
    b.add_argument("--windows", type=int, default=3, help="30 s windows to time (default: %(default)s)")
    b.add_argument("--repeat", type=int, default=3, help="timed runs per window, the fastest counts (default: %(default)s)")
    b.add_argument("--audio", default=None, help="audio to cut windows from (default: a synthetic signal)")
    b.add_argument("--threads", type=int, default=0)
    b.add_argument("--json", action="store_true", help="print one JSON object")
    b.add_argument("--precision", choices=["auto", "fp32", "bf16", "int8"], default=None, help="cpu device precision: auto (default: bf16 where the CPU has native bf16, else int8 on x86 with AVX2, else fp32), fp32, bf16 (oneDNN, fp32 accumulation), int8 (per-channel weights, per-row activations)")
    b.add_argument("--e2e", action="store_true", help="end to end: whole transcriptions, ours vs openai-whisper vs faster-whisper")
    b.add_argument("--manifest", default=None, help="eval manifest.jsonl (default: ../shared/eval-dev/manifest.jsonl from the repo root)")
    b.add_argument("--folder", default=None, help="benchmark every audio file in this folder instead of a manifest")
    b.add_argument("--long", action="store_true", help="e2e: only the long recording (the clips concatenated)")
    b.add_argument("--short", action="store_true", help="e2e: only the short clips")
    b.add_argument("--peers", default="openai,faster-whisper", help="e2e peers, comma separated (openai, faster-whisper, faster-whisper-batched, whisper.cpp; '' for none)")
    b.add_argument("--limit", type=int, default=0, help="e2e: first N items only")
    b.add_argument("--also", default="", help="e2e: our variants to run beside ours, comma separated (short-window, int8-decoder)")
    b.add_argument("--fallback", action="store_true", help="e2e: temperature fallback 0,0.2,...,1.0 (default: greedy at 0 only)")
    b.add_argument("--batched", action="store_true", help="e2e: add our default mode, batched (ours-batched: VAD chunks decoded 8 at a time), beside 'ours' (openai-whisper's loop)")
    b.add_argument("--longform", type=float, nargs="*", default=None, metavar="MINUTES",
                   help="e2e: add the long-form set, recordings of these many minutes built from the manifest's clips, espeak-ng speech and pauses (default with no value: 3 5)")
    b.add_argument("--isolate", action="store_true", help="e2e: each system in its own process per round, with its peak resident memory")
    b.add_argument("--beam_size", type=_optional_int, default=None)
    _add_speed_options(b)
    return parser


def _add_speed_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--decoder", choices=["fast", "openai"], default=None, help="text decoder: fast (preallocated kv cache, fused steps) or openai-whisper's own (default: fast)")
    p.add_argument("--decoder-quant", "--decoder_quant", choices=["none", "int8"], default=None, help="fast decoder weights: none (fp32, exact) or int8 dynamic quantisation")
    p.add_argument("--short-window", "--short_window", type=_str2bool, nargs="?", const=True, default=None, help="encode each window over its audio + 3 s (at least 12 s) instead of 30 s: clips under 30 s and the last window of longer audio (changes some words: see README)")


def _engine_options(args: argparse.Namespace) -> tuple[dict, dict]:
    device_options = {}
    if getattr(args, "precision", None):
        device_options["precision"] = args.precision
    engine_options = {}
    if getattr(args, "decoder", None):
        engine_options["decoder"] = args.decoder
    if getattr(args, "decoder_quant", None):
        engine_options["decoder_quant"] = args.decoder_quant
    if getattr(args, "short_window", None) is not None:
        engine_options["short_window"] = args.short_window
    return device_options, engine_options


# ---------------------------------------------------------------------------------------


def cmd_transcribe(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from .audio.decode import AudioError
    from .catalog import DeviceError, ModelError
    from .output import write_outputs
    from .pipeline import Engine, TranscribeOptions
    from .profiling import export_timings, summary_dict

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.output_format is not None and args.output_dir is None:
        args.output_dir = "."
    formats = args.output_format or (list(FORMATS) if args.output_dir else [])
    word_opts = {k: getattr(args, k) for k in ("highlight_words", "max_line_width", "max_line_count", "max_words_per_line")}
    if not args.word_timestamps and any(word_opts.values()):
        _err("--highlight_words/--max_line_width/--max_line_count/--max_words_per_line need --word_timestamps True")
        return 2
    temps: tuple[float, ...]
    if args.temperature_increment_on_fallback is not None:
        temps = tuple(float(t) for t in np.arange(args.temperature, 1.0 + 1e-6, args.temperature_increment_on_fallback))
    else:
        temps = (args.temperature,)
    options = TranscribeOptions(
        language=args.language,
        task=args.task,
        temperature=temps,
        beam_size=args.beam_size,
        best_of=args.best_of,
        patience=args.patience,
        length_penalty=args.length_penalty,
        suppress_tokens=args.suppress_tokens,
        initial_prompt=args.initial_prompt,
        carry_initial_prompt=args.carry_initial_prompt,
        condition_on_previous_text=args.condition_on_previous_text,
        compression_ratio_threshold=args.compression_ratio_threshold,
        logprob_threshold=args.logprob_threshold,
        no_speech_threshold=args.no_speech_threshold,
        word_timestamps=args.word_timestamps,
        clip_timestamps=args.clip_timestamps,
        hallucination_silence_threshold=args.hallucination_silence_threshold,
        batched=args.batched,
        batch_size=args.batch_size,
    )
    try:
        device_options, engine_options = _engine_options(args)
        from .profiling import Recorder

        # every dispatch's event is kept only when --profile writes them (~40 MB an hour)
        engine = Engine(args.model, args.device, recorder=Recorder(keep=bool(args.profile)), on_notice=lambda msg: _err(f"note: {msg}"),
                        device_options=device_options, **engine_options)
    except (ModelError, DeviceError) as exc:
        _err(f"error: {exc}")
        return 2
    if engine.model_name.endswith(".en") and args.language not in (None, "en", "English"):
        warnings.warn(f"{engine.model_name} is an English-only model; using English instead of {args.language!r}", stacklevel=2)

    failed = 0
    results = []
    for path in args.audio:
        try:
            from .audio.decode import audio_duration, load_audio

            # the batched mode reads a file forward a block at a time (memory bounded by a
            # batch, not by the recording); the sequential loop takes the whole array
            header_s = audio_duration(path)
            batched = options.batched_for(header_s)
            audio = path if batched else load_audio(path)
            duration = header_s if batched else len(audio) / SAMPLE_RATE
        except AudioError as exc:
            _err(f"error: {exc}")
            failed += 1
            continue
        show = args.progress if args.progress is not None else duration > 30
        bar = _progress_bar(duration, path) if show else None
        try:
            result = engine.transcribe(
                audio,
                replace(options, batched=batched),
                source=path,
                on_progress=(lambda done, total, bar=bar: bar.update(done)) if bar else None,
            )
        except Exception as exc:  # one bad file must not stop the batch
            _err(f"error: {path}: transcription failed ({type(exc).__name__}: {exc})")
            failed += 1
            continue
        finally:
            if bar:
                bar.close()
        text = result.text.strip()
        if len(args.audio) > 1:
            print(f"==> {path}")
        print(text, flush=True)
        if formats:
            write_outputs(result.result, path, args.output_dir, formats, word_opts)
        results.append(result)
        _err(
            f"{path}: {result.duration_s:.1f} s of audio in {result.elapsed_s:.2f} s "
            f"({result.realtime_factor:.1f}x real time, encoder {result.encoder_s:.2f} s on {result.device})"
        )
    if args.profile:
        events = [e for r in results for e in r.events]
        export_timings(
            events,
            args.profile,
            args.profile_format,
            extra={
                "model": engine.model_name,
                "device": engine.device_name,
                "files": [
                    {"source": r.source, "duration_s": r.duration_s, "elapsed_s": r.elapsed_s, "encoder_s": r.encoder_s, "summary": summary_dict(r.events)}
                    for r in results
                ],
            },
        )
    engine.close()
    if failed:
        _err(f"{failed} of {len(args.audio)} file(s) failed")
        return 1
    return 0


def _progress_bar(duration: float, path: str):
    from tqdm import tqdm

    class Bar:
        def __init__(self) -> None:
            self.bar = tqdm(total=round(duration, 1), unit="s", desc=Path(path).name, file=sys.stderr, leave=False)

        def update(self, done: float) -> None:
            self.bar.update(round(done, 1) - self.bar.n)

        def close(self) -> None:
            self.bar.close()

    return Bar()


def cmd_listen(args: argparse.Namespace) -> int:
    import torch

    from .catalog import DeviceError, ModelError
    from .live.decoder import DecoderOptions, WhisperUtteranceDecoder
    from .live.dictation import DictationOptions, DictationSession, Final, Notice, Partial, fmt_time
    from .live.segmenter import SegmenterOptions
    from .live.sources import FilePlayer, MicSource
    from .pipeline import Engine

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.input is not None:
        from .audio.decode import AudioError

        try:
            source = FilePlayer(args.input, speed=args.speed)
        except AudioError as exc:
            _err(f"error: {exc}")
            return 2
    else:
        device = args.input_device
        if device is not None and device.isdigit():
            device = int(device)
        source = MicSource(device)
    try:
        engine = Engine(args.model, args.device, on_notice=lambda msg: _err(f"note: {msg}"))
    except (ModelError, DeviceError) as exc:
        _err(f"error: {exc}")
        return 2
    show_partials = args.partials if args.partials is not None else sys.stderr.isatty()
    out = open(args.output, "a", encoding="utf-8") if args.output else None

    sink = listen_paste_sink(args, _err)
    from .live.levelhint import QuietMicMonitor

    quiet = QuietMicMonitor()

    def on_event(ev: object) -> None:
        if sink is not None:
            sink.on_event(ev)
        hint = quiet.on_event(ev)
        if hint is not None:
            _err("note: " + hint.message)
        if isinstance(ev, Final) and ev.text:
            if show_partials:
                sys.stderr.write("\r\033[K")
            print(f"[{fmt_time(ev.start_s)} --> {fmt_time(ev.end_s)}] {ev.text}", flush=True)
            if out is not None:
                out.write(ev.text + "\n")
                out.flush()
        elif isinstance(ev, Partial) and show_partials and ev.stable:
            sys.stderr.write("\r\033[K\033[2m" + ev.stable[-150:] + "\033[0m")
            sys.stderr.flush()
        elif isinstance(ev, Notice):
            _err(("error: " if ev.error else "note: ") + ev.message)

    decoder = listen_decoder(WhisperUtteranceDecoder(engine, DecoderOptions(language=args.language, audio_ctx=args.audio_ctx, final=args.final)), args)
    options = DictationOptions(
        prompt_previous=args.prompt_previous,
        partials=True,
        segmenter=SegmenterOptions(min_silence_ms=args.silence_ms),
        wav_path=args.recording,
    )
    session = DictationSession(decoder, source, options, on_event=on_event)
    try:
        session.start()
    except Exception:
        if sink is not None:
            sink.close()
        engine.close()
        return 1
    _err(f"listening to {getattr(source, 'name', 'the microphone')} with {engine.model_name} on {engine.device_name}; Ctrl+C to stop")
    interrupted = False
    try:
        while not session.wait(0.2):
            pass
    except KeyboardInterrupt:
        interrupted = True
        _err("stopping: decoding what was said ...")
    try:
        result = session.stop()
    except KeyboardInterrupt:  # a second Ctrl+C: the recording is closed as far as it went
        result = session.stop(timeout=0.1)
    if out is not None:
        out.close()
    if sink is not None:
        sink.close()  # delivers what is still queued, restores the clipboard
    engine.close()
    _err(f"recording: {result.wav_path} ({result.audio_s:.1f} s)" + (f"; transcript: {result.transcript_path}" if result.transcript_path else ""))
    if result.errors and not interrupted:
        return 1
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    from .catalog import pick_auto, probe_all

    infos = probe_all()
    auto, why = pick_auto()
    if args.json:
        print(json.dumps({"devices": [i.to_dict() for i in infos], "auto": auto, "auto_reason": why}))
        return 0
    for info in infos:
        state = "available" if info.available else f"unavailable: {info.reason}"
        print(f"{info.name:<10} {state}")
        if info.description:
            print(f"{'':<10} {info.description}")
        for key, value in info.details.items():
            print(f"{'':<10} {key}: {value}")
    print(f"auto -> {auto}" + (f" ({why})" if why else ""))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .catalog import available_models

    rows = available_models()
    if args.json:
        print(json.dumps({"models": rows}))
        return 0
    for row in rows:
        print("  ".join(f"{k}={v}" for k, v in row.items()))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_encoder_bench
    from .catalog import DeviceError, ModelError

    device_options, engine_options = _engine_options(args)
    if args.e2e:
        return _cmd_bench_e2e(args, device_options, engine_options)
    try:
        report = run_encoder_bench(args.model, args.device, args.windows, args.repeat, args.audio, args.threads, device_options=device_options)
    except (ModelError, DeviceError) as exc:
        _err(f"error: {exc}")
        return 2
    _print_report(report, args.json)
    return 0


def _cmd_bench_e2e(args: argparse.Namespace, device_options: dict, engine_options: dict) -> int:
    from .bench_e2e import run_e2e_bench
    from .catalog import DeviceError, ModelError
    from .peers import DecodeSettings

    temps = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0) if args.fallback else (0.0,)
    settings = DecodeSettings(language="en", temperatures=temps, beam_size=args.beam_size)
    peers = tuple(p.strip() for p in args.peers.split(",") if p.strip())
    try:
        report = run_e2e_bench(
            args.model,
            manifest=args.manifest,
            folder=args.folder,
            peers=peers,
            repeat=args.repeat,
            long=not args.short,
            short=not args.long,
            settings=settings,
            device=args.device if args.device != "auto" else "cpu",
            device_options=device_options,
            engine_options=engine_options,
            limit=args.limit,
            threads=args.threads,
            also=tuple(v.strip() for v in args.also.split(",") if v.strip()),
            batched=args.batched,
            longform=args.longform is not None,
            longform_minutes=tuple(args.longform or (3.0, 5.0)),
            isolate=args.isolate,
        )
    except (ModelError, DeviceError, ValueError, OSError) as exc:
        _err(f"error: {exc}")
        return 2
    for name, info in report["runners"].items():
        if not info["available"]:
            _err(f"note: peer {name} skipped: {info['reason']}")
    _print_report(report, args.json)
    return 0


def _print_report(report: dict, as_json: bool) -> None:
    """A bench report: one JSON object (without the rendered text) or the text."""
    if as_json:
        print(json.dumps({k: v for k, v in report.items() if k != "text"}))
    else:
        print(report["text"])


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"transcribe": cmd_transcribe, "listen": cmd_listen, "devices": cmd_devices, "models": cmd_models, "bench": cmd_bench, "dictate": run_dictate}
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        _err("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
