"""Record from a microphone: input picker, level meter, elapsed time, start/stop.

The recording streams into a WAV file in the user data folder while it is made (see
:mod:`npu_whisper_app.audio.capture`), so it survives whatever happens afterwards.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QProgressBar, QPushButton, QToolButton, QWidget

from ..audio.capture import Microphone, MicrophoneError, list_input_devices
from .paths import new_recording_path

log = logging.getLogger(__name__)

METER_FLOOR_DB = -60


def format_elapsed(seconds: float) -> str:
    m, s = divmod(max(seconds, 0.0), 60)
    return f"{int(m)}:{s:04.1f}"


class RecordPanel(QWidget):
    """A compact recording bar. Emits ``finished(path)`` with the saved WAV."""

    started = Signal(str)  # wav path
    finished = Signal(str)  # wav path (complete, closed)
    error = Signal(str)
    _error_from_thread = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.mic: Microphone | None = None
        self.path: Path | None = None
        self.devices = QComboBox()
        self.devices.setObjectName("input_device")
        self.devices.setToolTip("Microphone to record from")
        self.devices.setMinimumContentsLength(18)
        self.devices.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        refresh = QToolButton()
        refresh.setText("⟳")
        refresh.setToolTip("Look for microphones again")
        refresh.clicked.connect(self.refresh_devices)
        self.meter = QProgressBar()
        self.meter.setObjectName("level_meter")
        self.meter.setRange(METER_FLOOR_DB, 0)
        self.meter.setValue(METER_FLOOR_DB)
        self.meter.setTextVisible(False)
        self.meter.setFixedWidth(140)
        self.meter.setToolTip("Input level (dBFS)")
        self.elapsed = QLabel(format_elapsed(0))
        self.elapsed.setObjectName("record_elapsed")
        self.elapsed.setMinimumWidth(48)
        self.button = QPushButton("● Record")
        self.button.setObjectName("record_button")
        self.button.setToolTip("Start or stop recording (Ctrl+R)")
        self.button.clicked.connect(self.toggle)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Microphone:"))
        layout.addWidget(self.devices, 1)
        layout.addWidget(refresh)
        layout.addWidget(self.meter)
        layout.addWidget(self.elapsed)
        layout.addWidget(self.button)
        self._timer = QTimer(self)
        self._timer.setInterval(50)
        self._timer.timeout.connect(self._update)
        self._error_from_thread.connect(self.error)
        self._wanted: str | None = None

    # -- devices -------------------------------------------------------------------------
    def refresh_devices(self, wanted: str | None = None) -> None:
        wanted = wanted if isinstance(wanted, str) else (self.devices.currentData() or self._wanted)
        self.devices.clear()
        try:
            inputs = list_input_devices()
        except MicrophoneError as exc:
            inputs = []
            self.devices.setToolTip(str(exc))
        if not inputs:
            self.devices.addItem("No microphone found", None)
            self.devices.setEnabled(False)
            self.button.setEnabled(False)
            return
        self.devices.setEnabled(True)
        self.button.setEnabled(True)
        self.devices.addItem("System default", "")
        for dev in inputs:
            self.devices.addItem(dev.label(), dev.name)
        idx = self.devices.findData(wanted) if wanted else 0
        self.devices.setCurrentIndex(max(idx, 0))

    def set_device(self, name: str | None) -> None:
        self._wanted = name
        idx = self.devices.findData(name or "")
        if idx >= 0:
            self.devices.setCurrentIndex(idx)

    def device_name(self) -> str | None:
        return self.devices.currentData() or None

    # -- recording -----------------------------------------------------------------------
    @property
    def recording(self) -> bool:
        return self.mic is not None

    def toggle(self) -> None:
        if self.recording:
            self.stop()
        else:
            self.start()

    def start(self) -> bool:
        if self.recording:
            return False
        device = self.device_name()
        path = new_recording_path()
        mic = Microphone(device=device, wav_path=path, on_error=self._error_from_thread.emit)
        try:
            mic.start()
        except MicrophoneError as exc:
            log.error("cannot start recording: %s", exc)
            self.error.emit(f"Cannot record: {exc}")
            return False
        except Exception as exc:  # PortAudio can fail in many ways; the app must live on
            log.exception("cannot start recording")
            self.error.emit(f"Cannot record: {exc}")
            return False
        self.mic, self.path = mic, path
        self.devices.setEnabled(False)
        self.button.setText("■ Stop")
        self.button.setStyleSheet("color: #c00; font-weight: bold;")
        self._timer.start()
        log.info("recording to %s", path)
        self.started.emit(str(path))
        return True

    def stop(self) -> Path | None:
        if self.mic is None:
            return None
        mic, self.mic = self.mic, None
        self._timer.stop()
        try:
            path = mic.stop()
        except Exception as exc:
            log.exception("stopping the recording failed")
            self.error.emit(f"Recording stopped with an error: {exc}")
            path = self.path
        self.devices.setEnabled(True)
        self.button.setText("● Record")
        self.button.setStyleSheet("")
        self.meter.setValue(METER_FLOOR_DB)
        self.elapsed.setText(format_elapsed(mic.seconds))
        if mic.samples == 0 or path is None:
            self.error.emit("Nothing was recorded (the microphone delivered no audio).")
            return None
        log.info("recording saved: %s (%.1f s)", path, mic.seconds)
        self.finished.emit(str(path))
        return path

    @property
    def seconds(self) -> float:
        return self.mic.seconds if self.mic is not None else 0.0

    def _update(self) -> None:
        if self.mic is None:
            return
        self.meter.setValue(int(max(METER_FLOOR_DB, min(0.0, self.mic.level_dbfs))))
        self.elapsed.setText(format_elapsed(self.mic.seconds))
