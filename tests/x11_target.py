"""A second X client for the desktop tests: a Tk window with one text field, focused.

Run as ``python x11_target.py OUT_FILE [WM_CLASS]``. Writes the field's whole content to
OUT_FILE after every change, and one JSON line per key press/release to stdout
(keysym, modifier state). Prints ``ready`` once it has the input focus. With a terminal's
WM_CLASS (``xterm``) it pastes on Ctrl+Shift+V, as terminals do, and ignores Ctrl+V.
"""

from __future__ import annotations

import json
import os
import sys
import tkinter as tk


def main() -> None:
    out = sys.argv[1]
    cls = sys.argv[2] if len(sys.argv) > 2 else "Npuwtarget"
    terminal = cls.lower() == "xterm"
    root = tk.Tk(className=cls)
    root.geometry("400x200+0+0")
    text = tk.Text(root)
    text.pack(fill="both", expand=True)

    def save(*_):
        tmp = out + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text.get("1.0", "end-1c"))
        os.replace(tmp, out)

    def log(kind):
        def handler(ev):
            print(json.dumps({"ev": kind, "keysym": ev.keysym, "state": int(ev.state)}), flush=True)
            root.after(1, save)
        return handler

    def paste_clipboard(_ev=None):
        try:
            text.insert("insert", root.clipboard_get())
        except tk.TclError:
            pass
        root.after(1, save)
        return "break"

    # the key log sees every key first, whatever the field's own bindings do
    text.bindtags(("keylog",) + text.bindtags())
    root.bind_class("keylog", "<KeyPress>", log("press"))
    root.bind_class("keylog", "<KeyRelease>", log("release"))
    if terminal:
        text.bind("<Control-v>", lambda e: "break")
        text.bind("<Control-V>", paste_clipboard)  # Ctrl+Shift+V
    else:
        text.bind("<Control-v>", paste_clipboard)
    save()

    def ready():
        root.focus_force()
        text.focus_set()
        print("ready", flush=True)

    root.after(300, ready)
    root.mainloop()


if __name__ == "__main__":
    main()
