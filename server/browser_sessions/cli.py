"""``browser-sessions``: serve (MCP over stdio, SSE or streamable HTTP), api (the cloud service's REST API on
the local engine), profiles (saved logins, profiles_cli.py), run (one task, run_cli.py), sessions (the records,
sessions_cli.py), demo, doctor."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import platform
import sys
import time
from importlib.metadata import version
from typing import Any

import anyio
from playwright.async_api import async_playwright

from browser_sessions import __version__
from browser_sessions.backends.local.browser import find_browser, launch
from browser_sessions.backends.local.endpoint_urls import parse_endpoints
from browser_sessions.backends.local.planners.models.choose import SAMPLING, chosen
from browser_sessions.errors import BrowserUnavailable, InvalidInput
from browser_sessions.log_files import log_to_file
from browser_sessions.profiles_cli import add_profile_commands, run_profiles
from browser_sessions.run_cli import add_run_command, run_command
from browser_sessions.sessions_cli import add_sessions_command, run_sessions
from browser_sessions.settings import Settings

logger = logging.getLogger("browser_sessions.serve")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="browser-sessions", description=__doc__)
    parser.add_argument("--version", action="version", version=f"browser-sessions {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the MCP server")
    serve.add_argument("--transport", choices=["stdio", "sse", "streamable-http"], help="default: stdio")
    serve.add_argument("--host", help="bind address for HTTP transports (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port for HTTP transports (default 8931)")
    serve.add_argument("--browser-path", help="Chromium/Chrome executable (default: discovered)")
    serve.add_argument("--headed", action="store_true", help="show browser windows")
    serve.add_argument("--idle-timeout", type=float, help="seconds before an idle session ends (default 300)")
    serve.add_argument("--max-sessions", type=int, help="live sessions at most (default 50)")
    serve.add_argument(
        "--browser-endpoint",
        action="append",
        metavar="URL",
        help="place sessions on this browser instead of launching one: a Playwright server (ws://) or a CDP "
        "endpoint (http://); repeatable",
    )
    serve.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])

    api = commands.add_parser("api", help="serve the cloud browser-session REST API on the local engine")
    api.add_argument("--host", help="bind address (default 127.0.0.1; BROWSER_SESSIONS_API_HOST)")
    api.add_argument("--port", type=int, help="port (default 8080; BROWSER_SESSIONS_API_PORT)")

    commands.add_parser("demo", help="run the quickstart demo: a real task on a local demo shop")
    commands.add_parser("doctor", help="check the browser, versions and settings")
    add_profile_commands(commands)
    add_run_command(commands)
    add_sessions_command(commands)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    flags: dict[str, Any] = {
        "transport": args.transport,
        "host": args.host,
        "port": args.port,
        "browser_path": args.browser_path,
        "idle_timeout": args.idle_timeout,
        "max_sessions": args.max_sessions,
        "log_level": args.log_level,
        "browser_endpoints": args.browser_endpoint,
    }
    if args.headed:
        flags["headless"] = False
    return Settings(**{k: v for k, v in flags.items() if v is not None})


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(settings: Settings) -> int:
    from browser_sessions.mcp.http_boundary import check_tokens, transport_security
    from browser_sessions.mcp.server import build_server

    http = settings.transport != "stdio"
    if http and not _is_loopback(settings.host) and not settings.auth_token_list:
        print(
            f"Refusing to serve on {settings.host} without authentication: bound beyond loopback (127.0.0.1, "
            "::1, localhost) the HTTP transports need bearer tokens. Set BROWSER_SESSIONS_AUTH_TOKENS to one or "
            "more tokens, comma-separated, one per owner (e.g. $(openssl rand -hex 32)), or bind to loopback.",
            file=sys.stderr,
        )
        return 2
    try:
        check_tokens(settings)
        parse_endpoints(settings.browser_endpoints)
        security = transport_security(settings) if http else None
        chosen(settings)
        if settings.backend == "remote" and not settings.remote_url:
            raise InvalidInput("BROWSER_SESSIONS_BACKEND=remote needs BROWSER_SESSIONS_REMOTE_URL (the service's URL).")
    except InvalidInput as exc:
        print(f"Cannot serve: {exc.message}", file=sys.stderr)
        return 2
    server = build_server(settings)
    log_to_file(settings)
    if settings.transport == "stdio":
        server.run("stdio")
    else:
        tokens = len(settings.auth_token_list)
        logger.info(
            "serving %s on %s:%s; %s; accepted Host values: %s (add names with BROWSER_SESSIONS_ALLOWED_HOSTS)",
            settings.transport,
            settings.host,
            settings.port,
            f"bearer tokens required ({tokens} owners)" if tokens else "no tokens: every client is the local user",
            ", ".join(security.allowed_hosts) if security else "",
        )
        server.run(settings.transport, host=settings.host, port=settings.port, transport_security=security)
    return 0


def api(host: str | None, port: int | None) -> int:
    from browser_sessions.api.app import serve_api

    flags: dict[str, Any] = {"api_host": host, "api_port": port}
    settings = Settings(**{k: v for k, v in flags.items() if v is not None})
    if settings.allow_private_network is None:  # a network service: the HTTP transports' egress default
        settings = settings.model_copy(update={"allow_private_network": False})
    if not settings.api_key_list:
        print(
            "Refusing to start: no API key configured. Set BROWSER_SESSIONS_API_KEYS to the bearer keys clients "
            "must send (comma-separated), e.g. BROWSER_SESSIONS_API_KEYS=$(openssl rand -hex 24).",
            file=sys.stderr,
        )
        return 2
    try:
        parse_endpoints(settings.browser_endpoints)
        chosen(settings)
        anyio.run(serve_api, settings)
    except InvalidInput as exc:
        print(f"Cannot serve the API: {exc.message}", file=sys.stderr)
        return 2
    except BrowserUnavailable as exc:
        print(f"Cannot serve the API: {exc.message}", file=sys.stderr)
        return 1
    return 0


async def _doctor(settings: Settings) -> int:
    print(f"browser-sessions {__version__} on Python {platform.python_version()} ({platform.platform()})")
    for package in ("mcp", "playwright", "pydantic", "anyio"):
        print(f"  {package} {version(package)}")
    print("settings (BROWSER_SESSIONS_*):")
    for name, value in settings.model_dump().items():
        print(f"  {name.upper():<20} {value}")
    try:
        model = chosen(settings)
    except InvalidInput as exc:
        print(f"model: NOT READY\n  {exc.message}", file=sys.stderr)
        return 1
    if model is None or model == SAMPLING:
        print(
            "model: none configured; free-text tasks use the MCP client's model (sampling) on handshake-era "
            "connections that offer it, else fail with MODEL_REQUIRED (instruction lines need no model)"
        )
    else:
        print(f"model: {model} (not called by doctor)")
    async with async_playwright() as playwright:
        try:
            found = find_browser(settings, playwright.chromium.executable_path)
            print(f"browser: {found.path} (found via {found.source})")
            started = time.perf_counter()
            browser, _ = await launch(playwright, settings)
            page = await browser.new_page()
            await page.set_content("<title>ok</title>")
            print(f"  launched Chromium {browser.version} and opened a page in {time.perf_counter() - started:.2f} s")
            await browser.close()
        except BrowserUnavailable as exc:
            print(f"browser: NOT READY\n  {exc.message}", file=sys.stderr)
            return 1
    print("ready. Add it to an MCP client as: browser-sessions serve")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return serve(_settings(args))
    if args.command == "api":
        return api(args.host, args.port)
    if args.command == "doctor":
        return anyio.run(_doctor, Settings())
    if args.command == "profiles":
        return run_profiles(args)
    if args.command == "run":
        return run_command(args)
    if args.command == "sessions":
        return run_sessions(args)
    from browser_sessions.demo import main as demo

    return demo()
