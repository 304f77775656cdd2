"""Dictation into any application (no Qt here): text delivery (clipboard + paste key,
or typing) on X11 and Wayland, the global hotkey, the control socket that
``npu-whisper dictate --toggle`` talks to, settings, vocabulary, sounds, and the
dictation service that ties them to a :class:`~npu_whisper_app.live.dictation.DictationSession`.
"""
