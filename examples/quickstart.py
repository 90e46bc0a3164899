"""Quickstart: start browser-sessions over stdio with the official MCP client, serve a small demo shop on
127.0.0.1, run real tasks on it, print the state changes and the output, and terminate the session.

Run it with `scripts/dev.sh demo` (sets everything up first) or `.venv/bin/python examples/quickstart.py`.
The client code is in server/browser_sessions/demo.py (also `browser-sessions demo`).
"""

from browser_sessions.demo import main

if __name__ == "__main__":
    raise SystemExit(main())
