"""Audio in: file decoding, microphone capture, crash-safe WAV writing."""

#: every array of samples in the app is mono float32 at this rate (Whisper's)
SAMPLE_RATE = 16000
