"""The text sink: a dictation session's ``Final`` events, joined into running text and
delivered into the focused application, on a thread of its own so delivery (waiting
for the hotkey's modifiers, the paste) never holds up decoding.

Use it as (or from) the session's ``on_event``::

    sink = DeliverySink(TextDelivery.for_desktop(on_notice=...), UtteranceJoiner())
    session = DictationSession(decoder, source, options, on_event=sink.on_event)
    ...
    session.stop(); sink.close()
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..live.dictation import Final
from ..live.textproc import UtteranceJoiner
from .delivery import DeliveryResult, TextDelivery


@dataclass
class Delivered:
    """What became of one final utterance (also an event for the caller)."""

    index: int
    text: str  # as inserted (joined, spoken commands applied)
    result: DeliveryResult
    decided_at: float  # monotonic: the final was decided
    delivered_at: float  # monotonic: the paste key (or typing) was sent


class DeliverySink:
    def __init__(
        self,
        delivery: TextDelivery,
        joiner: UtteranceJoiner | None = None,
        on_delivered: Callable[[Delivered], None] | None = None,
    ) -> None:
        self.delivery = delivery
        self.joiner = joiner or UtteranceJoiner()
        self.on_delivered = on_delivered
        self.delivered: list[Delivered] = []
        self._q: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="dictation-delivery", daemon=True)
        self._thread.start()

    def on_event(self, ev: object) -> None:
        """Give every session event here; final utterances with text are delivered."""
        if isinstance(ev, Final) and ev.text:
            self._q.put(ev)

    def reset(self) -> None:
        """A new dictation: the next utterance starts a sentence."""
        self._q.put("reset")

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued, restore the clipboard, stop the thread."""
        self._q.put(None)
        self._thread.join(timeout)
        self.delivery.close()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """True once everything queued so far is delivered."""
        done = threading.Event()
        self._q.put(done)
        return done.wait(timeout)

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            if item == "reset":
                self.joiner.reset()
                continue
            if isinstance(item, threading.Event):
                item.set()
                continue
            ev: Final = item
            text = self.joiner.join(ev.text)
            if not text:
                continue
            try:
                result = self.delivery.deliver(text)
            except Exception as exc:  # a bug in a backend must not lose the sink
                result = DeliveryResult(False, False, "not delivered", f"{type(exc).__name__}: {exc}")
            d = Delivered(ev.index, text, result, ev.decided_at, time.monotonic())
            self.delivered.append(d)
            if self.on_delivered is not None:
                try:
                    self.on_delivered(d)
                except Exception:
                    pass
