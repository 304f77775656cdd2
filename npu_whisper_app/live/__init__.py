"""Live dictation: microphone (or a file played as one) -> ring buffer -> voice-activity
segmentation -> partial hypotheses (local agreement) and one final decode per utterance.

Qt-free; the GUI drives :class:`~npu_whisper_app.live.dictation.DictationSession` from a
worker thread and shows the events it reports.
"""
