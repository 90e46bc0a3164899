"""Egress to private networks: over the HTTP transports (and ``browser-sessions api``) the browser may not
reach private, loopback, link-local or cloud-metadata addresses, checked on the address the host resolves
to, for every redirect hop and subresource; stdio allows them; settings override both ways; ``file://`` is
refused unless allowed.

The test site is on 127.0.0.1 (a private address), so "refused" is checked on the site's own request log,
and hosts that must count as public are named in ``egress_allow_hosts``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx
import pytest
from anyio.abc import SocketStream
from mcp import Client

from browser_sessions.backends.local.addresses import AddressPolicy, IPAddress, non_public_kind
from browser_sessions.backends.local.egress import EgressProxy
from browser_sessions.settings import Settings
from tests.conftest import MODES, call, call_error, connect
from tests.processes import API_KEYS, clean_env, free_port, running
from tests.raw_browser import raw_chromium
from tests.site import Site
from tests.test_api import settled
from tests.test_egress import exchange

pytestmark = pytest.mark.anyio

HTTP = {"transport": "streamable-http"}  # in-memory server with the HTTP transports' defaults


def new_hosts(site: Site, before: int) -> set[str]:
    return {host.split(":")[0] for host, _ in site.requests[before:]}


async def go(client: Client, url: str) -> dict[str, Any]:
    """run_task that loads ``url`` and reads it."""
    return await call(client, "run_task", taskDetails=f"go to {url}\nextract text")


def assert_refused(result: dict[str, Any], *fragments: str) -> None:
    assert result["status"] == "failed", result
    assert result["error"]["code"] == "PRIVATE_ADDRESS_BLOCKED", result["error"]
    for fragment in fragments:
        assert fragment in result["error"]["message"], result["error"]["message"]


# ----- the HTTP default -----


@pytest.mark.parametrize("mode", MODES)
async def test_over_http_private_addresses_are_refused_for_tasks_and_navigate(mode: str, site: Site) -> None:
    async with connect(mode, **HTTP) as client:
        before = len(site.requests)
        assert_refused(await go(client, site.url("/")), "127.0.0.1 is a loopback address", "EGRESS_ALLOW_HOSTS")
        named = await go(client, site.url("/", host="app.localhost"))
        assert_refused(named, "app.localhost", "resolved from app.localhost")
        sid = (await call(client, "start_session"))["sessionId"]
        for url in (site.url("/table"), site.url("/", host="[::ffff:127.0.0.1]"), f"https://127.0.0.1:{site.port}/"):
            error = await call_error(client, "browser_act", sessionId=sid, action="navigate", url=url)
            assert "PRIVATE_ADDRESS_BLOCKED" in error and "loopback" in error, (url, error)
        assert new_hosts(site, before) == set()
        # the session is still usable after the refusals
        state = await call(client, "get_session", sessionId=sid)
        assert state["status"] == "Active"


async def test_a_redirect_from_an_allowed_host_to_a_private_address_is_refused(site: Site) -> None:
    async with connect(**HTTP, egress_allow_hosts="public.localhost") as client:
        sid = (await call(client, "start_session"))["sessionId"]
        for target, named in [
            (site.url("/", host="private.localhost"), "private.localhost"),
            (site.url("/"), "127.0.0.1"),
            (f"http://169.254.169.254:{site.port}/latest/meta-data/", "cloud metadata"),
        ]:
            start = site.url(f"/redirect?to={target}", host="public.localhost")
            before = len(site.requests)
            result = await call(client, "send_task", sessionId=sid, taskDetails=f"go to {start}\nextract text")
            assert_refused(result, named)
            assert new_hosts(site, before) == {"public.localhost"}, target  # the first hop only
        done = await call(client, "send_task", sessionId=sid, taskDetails=f"go to {site.url('/', 'public.localhost')}")
        assert done["status"] == "task_completed"


async def test_a_click_into_a_private_address_fails_the_step_naming_why(site: Site) -> None:
    async with connect(**HTTP, egress_allow_hosts="public.localhost") as client:
        sid = (await call(client, "start_session"))["sessionId"]
        target = site.url("/", host="private.localhost")
        opener = site.url(f"/popup?to={target}", host="public.localhost")
        await call(client, "browser_act", sessionId=sid, action="navigate", url=opener)
        snapshot = await call(client, "browser_snapshot", sessionId=sid, format="json")
        ref = next(e["ref"] for e in snapshot["elements"] if e["name"] == "Open")
        before = len(site.requests)
        error = await call_error(client, "browser_act", sessionId=sid, action="click", ref=ref)
        assert "PRIVATE_ADDRESS_BLOCKED" in error and "private.localhost" in error, error
        assert new_hosts(site, before) == set()


async def test_a_subresource_at_a_private_address_never_reaches_the_server(site: Site) -> None:
    async with connect(**HTTP, egress_allow_hosts="news.localhost") as client:
        image = site.url("/pixel.png", host="tracker.localhost")
        before = len(site.requests)
        page = await go(client, site.url(f"/image-from?src={image}", host="news.localhost"))
        # a refused subresource does not fail the task; it simply never loads
        assert page["status"] == "task_completed", page
        assert "page with image" in str(page["output"])
        assert new_hosts(site, before) == {"news.localhost"}


async def test_cloud_metadata_is_refused_even_where_private_addresses_are_allowed(site: Site) -> None:
    async with connect() as client:  # stdio: private addresses allowed
        sid = (await call(client, "start_session"))["sessionId"]
        for url in ("http://169.254.169.254/latest/meta-data/", "http://metadata.google.internal/computeMetadata/v1/"):
            with anyio.fail_after(10):  # refused at once: no connection (which would hang here) is tried
                error = await call_error(client, "browser_act", sessionId=sid, action="navigate", url=url)
            assert "PRIVATE_ADDRESS_BLOCKED" in error and "cloud metadata" in error, error
        done = await go(client, site.url("/"))
        assert done["status"] == "task_completed"


# ----- defaults and overrides -----


@pytest.mark.parametrize(
    ("transport", "env", "allowed"),
    [
        ("stdio", None, True),
        ("streamable-http", None, False),
        ("sse", None, False),
        ("stdio", "false", False),
        ("streamable-http", "true", True),
        ("sse", "TRUE", True),
    ],
)
def test_the_private_network_default_follows_the_transport_and_the_setting_overrides_it(
    monkeypatch: pytest.MonkeyPatch, transport: str, env: str | None, allowed: bool
) -> None:
    if env is None:
        monkeypatch.delenv("BROWSER_SESSIONS_ALLOW_PRIVATE_NETWORK", raising=False)
    else:
        monkeypatch.setenv("BROWSER_SESSIONS_ALLOW_PRIVATE_NETWORK", env)
    assert Settings(transport=transport).private_network_allowed is allowed


async def test_the_environment_overrides_the_default_both_ways(monkeypatch: pytest.MonkeyPatch, site: Site) -> None:
    monkeypatch.setenv("BROWSER_SESSIONS_ALLOW_PRIVATE_NETWORK", "false")
    async with connect() as client:  # stdio, overridden to refuse
        assert_refused(await go(client, site.url("/")), "loopback")
    monkeypatch.setenv("BROWSER_SESSIONS_ALLOW_PRIVATE_NETWORK", "true")
    async with connect(**HTTP) as client:  # HTTP, overridden to allow
        assert (await go(client, site.url("/")))["status"] == "task_completed"


async def test_stdio_allows_private_addresses_by_default(monkeypatch: pytest.MonkeyPatch, site: Site) -> None:
    monkeypatch.delenv("BROWSER_SESSIONS_ALLOW_PRIVATE_NETWORK", raising=False)
    async with connect() as client:
        done = await go(client, site.url("/", host="intranet.localhost"))
        assert done["status"] == "task_completed" and "Welcome home." in str(done["output"])


async def test_blocked_hosts_are_refused_like_avoid_domains_even_when_also_allowed(site: Site) -> None:
    async with connect(
        egress_block_hosts="*.tracker.localhost, ads.localhost", egress_allow_hosts="ads.localhost"
    ) as client:
        before = len(site.requests)
        for host in ("tracker.localhost", "pixel.tracker.localhost", "ads.localhost"):
            result = await go(client, site.url("/", host=host))
            assert result["status"] == "failed"
            assert result["error"]["code"] == "DOMAIN_BLOCKED", result["error"]
            assert "BROWSER_SESSIONS_EGRESS_BLOCK_HOSTS" in result["error"]["message"]
        assert (await go(client, site.url("/", host="sub.ads.localhost")))["status"] == "task_completed"
        assert new_hosts(site, before) == {"sub.ads.localhost"}


def test_host_lists_are_checked_when_the_server_starts() -> None:
    settings = Settings(
        egress_allow_hosts=" Intranet.Example.COM., *.corp.example ,[::1], 10.0.0.5", egress_block_hosts=""
    )
    assert settings.egress_allow_host_list == ["intranet.example.com", "*.corp.example", "::1", "10.0.0.5"]
    with pytest.raises(ValueError, match="'not a host' is not a host; write hosts like"):
        Settings(egress_block_hosts="example.com, not a host")


# ----- file:// -----


async def test_file_urls_are_refused_unless_allowed(site: Site) -> None:
    async with connect() as client:
        sid = (await call(client, "start_session"))["sessionId"]
        error = await call_error(client, "browser_act", sessionId=sid, action="navigate", url="file:///etc/hostname")
        assert "FILE_URL_BLOCKED" in error and "BROWSER_SESSIONS_ALLOW_FILE_URLS" in error
        for task in (
            {"taskDetails": "extract text", "startingPoint": "file:///etc/hostname"},
            {"taskDetails": "go to file:///etc/hostname\nextract text"},
        ):
            result = await call(client, "run_task", **task)
            assert (result["status"], result["error"]["code"]) == ("failed", "FILE_URL_BLOCKED"), result
        # nor can a page open one (Chromium refuses: "Not allowed to load local resource")
        popup = await call(
            client,
            "send_task",
            sessionId=sid,
            taskDetails=f'go to {site.url("/popup?to=file:///etc/hostname")}\nclick "Open"',
        )
        assert popup["status"] == "task_completed", popup
        tabs = await call(client, "browser_act", sessionId=sid, action="tab", tabAction="list")
        assert [tab["url"] for tab in tabs["tabs"]] == [site.url("/popup?to=file:///etc/hostname")]


async def test_file_urls_load_when_allowed() -> None:
    content = (await anyio.Path("/etc/hostname").read_text()).strip()
    async with connect(allow_file_urls=True) as client:
        done = await call(client, "run_task", taskDetails="extract text", startingPoint="file:///etc/hostname")
        assert done["status"] == "task_completed", done
        assert content in str(done["output"])


# ----- the proxy itself: no connection to a refused address, and one resolution per request -----


class Dialled(list[tuple[str, int]]):
    """Every (address, port) the proxy dials. Loopback is really dialled; anything else is refused at once
    (the public internet is not reachable from here, and no test traffic may leave the machine)."""

    async def dial(self, address: str, port: int) -> SocketStream:
        self.append((address, port))
        if address != "127.0.0.1":
            raise ConnectionRefusedError(f"tests dial only loopback, not {address}")
        return await anyio.connect_tcp(address, port)


@pytest.fixture
def dialled() -> Dialled:
    return Dialled()


@asynccontextmanager
async def proxy_with(policy: AddressPolicy, dialled: Dialled, resolve: Any = None) -> AsyncIterator[EgressProxy]:
    proxy = EgressProxy(lambda host: None, addresses=policy, resolve=resolve, dial=dialled.dial, connect_timeout=10)
    async with anyio.create_task_group() as group:
        await group.start(proxy.serve)
        yield proxy
        group.cancel_scope.cancel()


def upstream(dialled: Dialled) -> list[str]:
    """The addresses the proxy dialled."""
    return [address for address, _ in dialled]


async def test_metadata_is_refused_without_a_connection_attempt(dialled: Dialled) -> None:
    with anyio.fail_after(10):
        async with proxy_with(AddressPolicy(private_allowed=True), dialled) as proxy:
            for request in (
                "GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\n\r\n",
                "CONNECT 169.254.169.254:443 HTTP/1.1\r\n\r\n",
                "GET http://[::ffff:169.254.169.254]/ HTTP/1.1\r\n\r\n",
                "GET http://metadata.google.internal/ HTTP/1.1\r\n\r\n",
            ):
                answer = await exchange(proxy.port, request.encode())
                assert answer.startswith(b"HTTP/1.1 403 ") and b"cloud metadata" in answer, (request, answer)
    assert [r.kind for r in proxy.blocked] == ["address"] * 4
    assert upstream(dialled) == []


async def test_the_proxy_dials_the_address_it_checked_and_resolves_once(dialled: Dialled, site: Site) -> None:
    asked: list[str] = []

    async def loopback(host: str, port: int) -> list[IPAddress]:
        asked.append(host)
        return [ip_address("127.0.0.1")]

    # A name the system cannot resolve reaches the site at the address the proxy resolved and checked.
    before = len(site.requests)
    async with proxy_with(AddressPolicy(private_allowed=True), dialled, loopback) as proxy:
        answer = await exchange(proxy.port, f"GET http://nowhere.test:{site.port}/table HTTP/1.1\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.0 200 ") and b"Price list" in answer
    assert asked == ["nowhere.test"] and upstream(dialled) == ["127.0.0.1"]
    assert site.requests[before:] == [(f"nowhere.test:{site.port}", "/table")]

    # DNS rebinding: a public answer first, loopback to any later question. The proxy asks once and dials
    # the public address it checked (unreachable here: 502), never loopback.
    asked.clear()
    dialled.clear()

    async def rebinding(host: str, port: int) -> list[IPAddress]:
        asked.append(host)
        return [ip_address("8.8.8.8" if len(asked) == 1 else "127.0.0.1")]

    before = len(site.requests)
    async with proxy_with(AddressPolicy(private_allowed=False), dialled, rebinding) as proxy:
        answer = await exchange(proxy.port, f"GET http://rebind.test:{site.port}/ HTTP/1.1\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 502 ")
    assert asked == ["rebind.test"] and upstream(dialled) == ["8.8.8.8"]
    assert site.requests[before:] == []

    # One private answer among several is enough to refuse, whatever the order.
    async def mixed(host: str, port: int) -> list[IPAddress]:
        return [ip_address("8.8.8.8"), ip_address("10.1.2.3")]

    dialled.clear()
    async with proxy_with(AddressPolicy(private_allowed=False), dialled, mixed) as proxy:
        answer = await exchange(proxy.port, b"CONNECT dual.test:443 HTTP/1.1\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 403 ") and b"10.1.2.3 (resolved from dual.test) is a private" in answer
    assert upstream(dialled) == []


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("10.1.2.3", "private (RFC 1918)"),
        ("172.31.255.255", "private (RFC 1918)"),
        ("192.168.0.1", "private (RFC 1918)"),
        ("127.8.9.10", "loopback"),
        ("169.254.1.1", "link-local"),
        ("169.254.169.254", "cloud metadata"),
        ("100.64.0.1", "shared CGNAT (RFC 6598)"),
        ("0.0.0.0", "this-network"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fd12::1", "unique-local"),
        ("fe80::1", "link-local"),
        ("::ffff:10.0.0.1", "private (RFC 1918)"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::127.0.0.1", "loopback"),
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", "cloud metadata"),  # NAT64 of 169.254.169.254
        ("fd00:ec2::254", "cloud metadata"),
        ("224.0.0.1", "multicast"),
        ("192.0.2.1", "reserved"),
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_address_kinds(address: str, kind: str | None) -> None:
    assert non_public_kind(ip_address(address)) == kind


async def test_webrtc_sends_no_udp_around_the_proxy() -> None:
    """STUN over UDP would reach any address without passing the egress proxy; Chromium is launched so that
    WebRTC uses only proxied TCP, which the proxy checks like any other connection."""
    received: list[object] = []
    async with await anyio.create_udp_socket(local_host="127.0.0.1") as stun:
        stun_port = stun.extra(anyio.abc.SocketAttribute.local_port)

        async def listen() -> None:
            async for packet in stun:
                received.append(packet)

        asked: list[str] = []
        proxy = EgressProxy(lambda host: asked.append(host))
        async with raw_chromium() as browser, anyio.create_task_group() as group:
            group.start_soon(listen)
            proxy_port = await group.start(proxy.serve)
            context = await browser.new_context(proxy={"server": f"http://127.0.0.1:{proxy_port}"})
            page = await context.new_page()
            await page.evaluate(
                """async ([stun]) => {
                  const pc = new RTCPeerConnection({iceServers: [{urls: stun},
                    {urls: 'turn:10.9.8.7:3478?transport=tcp', username: 'u', credential: 'p'}]});
                  pc.createDataChannel('x');
                  await pc.setLocalDescription(await pc.createOffer());
                  await new Promise(done => { pc.onicegatheringstatechange = () =>
                    pc.iceGatheringState === 'complete' && done(); setTimeout(done, 5000); });
                }""",
                [f"stun:127.0.0.1:{stun_port}"],
            )
            await context.close()
            group.cancel_scope.cancel()
    assert received == []
    assert "10.9.8.7" in asked  # TURN over TCP went to the proxy, where the address rule applies


# ----- the real servers -----


async def test_serve_over_streamable_http_refuses_private_addresses_by_default(tmp_path: Path, site: Site) -> None:
    port = free_port()
    env = clean_env(
        BROWSER_SESSIONS_DATA_DIR=str(tmp_path),
        BROWSER_SESSIONS_NAVIGATION_TIMEOUT="10",
        BROWSER_SESSIONS_EGRESS_ALLOW_HOSTS="public.localhost",
    )
    args = ["serve", "--transport", "streamable-http", "--port", str(port)]
    with running(args, port, tmp_path / "serve.log", env), anyio.fail_after(60):
        async with Client(f"http://127.0.0.1:{port}/mcp") as client:
            assert_refused(await go(client, site.url("/")), "loopback")
            assert (await go(client, site.url("/", host="public.localhost")))["status"] == "task_completed"


async def test_browser_sessions_api_refuses_private_addresses_by_default(tmp_path: Path, site: Site) -> None:
    port = free_port()
    env = clean_env(BROWSER_SESSIONS_API_KEYS=API_KEYS, BROWSER_SESSIONS_DATA_DIR=str(tmp_path))
    with running(["api", "--port", str(port)], port, tmp_path / "api.log", env), anyio.fail_after(60):
        headers = {"Authorization": f"Bearer {API_KEYS.split(',')[0]}"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30) as http:
            body = {"taskDetails": "extract text", "startingPoint": site.url("/")}
            failed = await settled(http, await http.post("/start/run-task", json=body))
    assert (failed["status"], failed["code"]) == ("failed", "PRIVATE_ADDRESS_BLOCKED"), failed
