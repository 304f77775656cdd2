""""Your microphone is very quiet": a hint derived from the session's level meter.

The VAD's level normalisation hears quiet speech, but a microphone whose speech peaks
near -50 dBFS is close to its noise floor and worth turning up. :class:`QuietMicMonitor`
watches the session's events: when an utterance was heard (a final with text) and the
loudest level seen while it was spoken stayed below ``quiet_dbfs``, it returns one
:class:`~npu_whisper_app.live.dictation.Notice` (once per monitor) for the caller to show.
Levels are the session's ``Level`` events: the loudest 32 ms block RMS per report.
"""

from __future__ import annotations

from ..live.dictation import Final, Level, Notice


class QuietMicMonitor:
    def __init__(self, quiet_dbfs: float = -42.0) -> None:
        self.quiet_dbfs = quiet_dbfs
        self._peak = -120.0  # loudest level since the last final
        self.told = False
        self.speech_peaks: list[float] = []

    def on_event(self, ev: object) -> Notice | None:
        """Feed every session event; returns the hint the first time it applies."""
        if isinstance(ev, Level):
            self._peak = max(self._peak, ev.dbfs)
            return None
        if not isinstance(ev, Final):
            return None
        peak, self._peak = self._peak, -120.0
        if not ev.text:
            return None
        self.speech_peaks.append(peak)
        if self.told or peak >= self.quiet_dbfs:
            return None
        self.told = True
        return Notice(
            f"Your microphone is very quiet: speech reaches only {peak:.0f} dBFS (around -20 dBFS is usual). "
            "Dictation still hears it, but words are more reliable if you raise the input volume "
            "in your system's sound settings or move closer to the microphone."
        )
