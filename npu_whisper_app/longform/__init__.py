"""Long-form transcription: VAD chunks at pauses, decoded in batches (see :mod:`.batched`)."""

from .batched import BatchedStats, transcribe_batched, transcribe_batched_many
from .chunks import Chunk, VadOptions, chunk_probs, merge_regions, speech_regions

__all__ = [
    "BatchedStats", "Chunk", "VadOptions", "chunk_probs", "merge_regions", "speech_regions",
    "transcribe_batched", "transcribe_batched_many",
]
