"""A Wayland client with a text field for the desktop tests (Qt on the wayland platform):
``python wl_target.py OUT_FILE`` writes the field's content to OUT_FILE on every change
and prints ``ready`` once shown."""

import os
import sys

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QPlainTextEdit

app = QApplication(sys.argv[:1])
out = sys.argv[1]
w = QPlainTextEdit()


def save() -> None:
    with open(out + ".tmp", "w", encoding="utf-8") as f:
        f.write(w.toPlainText())
    os.replace(out + ".tmp", out)


w.textChanged.connect(save)
w.resize(400, 200)
w.show()
w.activateWindow()
w.setFocus()
QTimer.singleShot(500, lambda: print("ready", flush=True))
app.exec()
