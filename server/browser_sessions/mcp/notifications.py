"""Backend events as MCP change notifications, on both protocol eras.

2026-07-28 clients listen through ``subscriptions/listen``: events go on the server's SubscriptionBus.
Handshake-era clients subscribe with ``resources/subscribe`` and hear ``notifications/resources/updated``
and ``list_changed`` on their own connection, which we remember when they call us.
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass, field

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.server.session import ServerSession
from mcp.server.subscriptions import ResourcesListChanged, ResourceUpdated, SubscriptionBus
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from browser_sessions.backends.base import BackendEvent, SessionChanged, TaskChanged

logger = logging.getLogger("browser_sessions.notifications")


def event_uris(event: BackendEvent) -> list[str]:
    if isinstance(event, SessionChanged):
        return [f"session://{event.session_id}", f"session://{event.session_id}/screenshot"]
    if isinstance(event, TaskChanged):
        task = f"session://{event.session_id}/tasks/{event.task_id}"
        return [task, f"{task}/output"]
    return []


@dataclass(eq=False)
class _Listener:
    session: ServerSession  # the latest request's; notifications it sends go on the connection's own channel
    uris: set[str] = field(default_factory=set)


class Notifier:
    def __init__(self, bus: SubscriptionBus) -> None:
        self._bus = bus
        # keyed by connection: the SDK builds a new ServerSession for every request
        self._legacy: weakref.WeakKeyDictionary[object, _Listener] = weakref.WeakKeyDictionary()
        send, receive = anyio.create_memory_object_stream[BackendEvent](max_buffer_size=10_000)
        self._send: MemoryObjectSendStream[BackendEvent] = send
        self._receive: MemoryObjectReceiveStream[BackendEvent] = receive

    def _listener(self, session: ServerSession) -> _Listener:
        connection = session._connection  # no public accessor in mcp 2.3
        listener = self._legacy.get(connection)
        if listener is None:
            listener = self._legacy[connection] = _Listener(session)
        listener.session = session
        return listener

    def remember(self, session: ServerSession, protocol_version: str) -> None:
        """Note a handshake-era connection so it hears list changes."""
        if protocol_version not in MODERN_PROTOCOL_VERSIONS:
            self._listener(session)

    def subscribe(self, session: ServerSession, uri: str) -> None:
        self._listener(session).uris.add(uri)

    def unsubscribe(self, session: ServerSession, uri: str) -> None:
        self._listener(session).uris.discard(uri)

    def on_event(self, event: BackendEvent) -> None:
        """Called synchronously by the backend; never blocks (notifications are hints, dropped when full)."""
        try:
            self._send.send_nowait(event)
        except anyio.WouldBlock:
            logger.debug("notification queue full; dropped %s", event)
        except anyio.ClosedResourceError:
            pass  # the server is shutting down; nobody is listening any more

    def close(self) -> None:
        self._send.close()

    async def pump(self) -> None:
        """Deliver queued events until cancelled."""
        async with self._receive:
            async for event in self._receive:
                await self._deliver(event)

    async def _deliver(self, event: BackendEvent) -> None:
        uris = event_uris(event)
        for uri in uris:
            await self._bus.publish(ResourceUpdated(uri=uri))
        if not uris:
            await self._bus.publish(ResourcesListChanged())
        for connection, listener in list(self._legacy.items()):
            try:
                if not uris:
                    await listener.session.send_resource_list_changed()
                for uri in uris:
                    if uri in listener.uris:
                        await listener.session.send_resource_updated(uri)
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError) as exc:
                logger.debug("dropping a closed connection from notifications: %r", exc)
                self._legacy.pop(connection, None)
