"""One XDG portal call that answers through a Request object's ``Response`` signal (the
pattern every portal method with a user dialog follows), over a jeepney connection."""

from __future__ import annotations

import secrets
from typing import Any

PORTAL_BUS = "org.freedesktop.portal.Desktop"
PORTAL_PATH = "/org/freedesktop/portal/desktop"


class PortalNoAnswer(Exception):
    """The desktop did not answer within the timeout (its dialog was not confirmed?)."""


class PortalRefused(Exception):
    """The portal call failed or the user said no; ``code`` 1 is the user's no."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class PortalMissing(Exception):
    """The desktop has no such portal interface (the call came back as an error)."""


def portal_request(conn: Any, interface: str, method: str, signature: str, args: tuple, options: dict, timeout_s: float) -> dict:
    """Call ``interface.method`` and wait for its Response; returns the results dict."""
    from jeepney import DBusAddress, MatchRule, new_method_call
    from jeepney.bus_messages import message_bus

    token = "npuw" + secrets.token_hex(6)
    sender = conn.unique_name.lstrip(":").replace(".", "_")
    path = f"{PORTAL_PATH}/request/{sender}/{token}"
    rule = MatchRule(type="signal", interface="org.freedesktop.portal.Request", member="Response", path=path)
    conn.send_and_get_reply(message_bus.AddMatch(rule), timeout=10)
    portal = DBusAddress(PORTAL_PATH, bus_name=PORTAL_BUS, interface=interface)
    with conn.filter(rule) as queue:
        call = new_method_call(portal, method, signature, (*args, dict(options, handle_token=("s", token))))
        reply = conn.send_and_get_reply(call, timeout=10)
        if reply.header.message_type.name == "error":
            raise PortalMissing(reply.body[0] if reply.body else "error")
        try:
            response = conn.recv_until_filtered(queue, timeout=timeout_s)
        except TimeoutError:
            raise PortalNoAnswer() from None
    code, results = response.body
    if code != 0:
        raise PortalRefused(code)
    return results
