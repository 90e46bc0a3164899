"""A small shop site served on 127.0.0.1 for the demo and the quickstart: a product table, a contact form
and a thank-you page, enough for a real task with no network."""

from __future__ import annotations

import html
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

SHOP = """<!doctype html><html><head><title>Demo Shop</title></head><body>
<h1>Demo Shop</h1>
<p>Everything for the desk. <a href="/contact">Contact us</a></p>
<table><caption>Products</caption>
<thead><tr><th>Item</th><th>Price</th><th>Stock</th></tr></thead>
<tbody>
<tr><td>Wireless keyboard</td><td>$49.00</td><td>12</td></tr>
<tr><td>Mouse, ergonomic</td><td>$29.50</td><td>0</td></tr>
<tr><td>USB-C hub</td><td>$1,299.00</td><td>3</td></tr>
</tbody></table>
</body></html>"""

CONTACT = """<!doctype html><html><head><title>Contact - Demo Shop</title></head><body>
<h1>Contact us</h1>
<form action="/thanks" method="get">
<label>Name <input name="name"></label>
<label>Email <input name="email" type="email" placeholder="you@example.com"></label>
<label>Topic <select name="topic"><option>Orders</option><option>Returns</option></select></label>
<label><input type="checkbox" name="news"> Send me news</label>
<button type="submit">Send</button>
</form></body></html>"""


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/":
            body = SHOP
        elif url.path == "/contact":
            body = CONTACT
        elif url.path == "/thanks":
            query = parse_qs(url.query)
            name = html.escape(query.get("name", ["friend"])[0])
            topic = html.escape(query.get("topic", ["-"])[0])
            body = f"<!doctype html><title>Thanks</title><h1>Thanks, {name}!</h1><p>Topic: {topic}</p>"
        else:
            self.send_error(404)
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # keep stdout/stderr quiet
        return


@contextmanager
def serve_demo_site() -> Iterator[str]:
    """Serve the shop on 127.0.0.1 (a free port) in a thread; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
