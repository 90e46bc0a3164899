"""The page layer against real Chromium: finding elements by name, page markdown, and HTML tables."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import anyio
import pytest
from playwright.async_api import Browser, Page

from browser_sessions.backends.local.page.extract import Table, extract_table, page_markdown
from browser_sessions.backends.local.page.locate import Intent, candidate_names, locate, wait_for_text
from browser_sessions.errors import ElementNotFound
from tests.raw_browser import PageServer, raw_chromium, serve_pages

# Every Playwright call in a test is bounded by this, on top of the page layer's own timeouts.
TEST_SECONDS = 20


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def site() -> Iterator[PageServer]:
    with serve_pages() as served:
        yield served


@pytest.fixture(scope="module")
async def browser(anyio_backend: str) -> AsyncIterator[Browser]:
    async with raw_chromium() as launched:
        yield launched


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context()
    context.set_default_timeout(TEST_SECONDS * 1000)
    opened = await context.new_page()
    yield opened
    await context.close()


async def tag_and_id(page: Page, name: str, intent: Intent = "click") -> str:
    found = await locate(page, name, intent, timeout=2)
    return str(await found.evaluate("e => e.localName + '#' + e.id"))


# --- locate -------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_click_finds_button_link_and_handler_only_span(page: Page) -> None:
    await page.set_content(
        """<button id=b>Save</button> <a id=l href="#docs">Docs</a>
        <p>To continue read <span id=s onclick="window.hit = 'span'">here</span> first.</p>
        <img id=i alt="Basket" onclick="window.hit = 'img'" src="data:,">"""
    )
    assert await tag_and_id(page, "save") == "button#b"
    assert await tag_and_id(page, "  DOCS ") == "a#l"
    span = await locate(page, "Here", "click", timeout=2)
    await span.click()
    assert await page.evaluate("window.hit") == "span"
    assert await tag_and_id(page, "basket") == "img#i"


@pytest.mark.anyio
async def test_fill_by_label_placeholder_and_aria_label(page: Page) -> None:
    await page.set_content(
        """<label for=u>Username</label> <input id=u>
        <label>Password <input id=p type=password></label>
        <input id=q placeholder="Search products">
        <input id=c aria-label="Coupon code">
        <input id=n name="zip">
        <input type=checkbox id=x aria-label="Username reminder">"""
    )
    for name, value in [("username", "bob"), ("Password", "pw"), ("search products", "socks")]:
        await (await locate(page, name, "fill", timeout=2)).fill(value)
    await (await locate(page, "Coupon Code", "fill", timeout=2)).fill("SAVE10")
    await (await locate(page, "ZIP", "fill", timeout=2)).fill("12345")
    values = await page.evaluate("[...document.querySelectorAll('input:not([type=checkbox])')].map(i => i.value)")
    assert values == ["bob", "pw", "socks", "SAVE10", "12345"]
    assert await tag_and_id(page, "coupon", "fill") == "input#c"


@pytest.mark.anyio
async def test_select_and_check_by_label(page: Page) -> None:
    await page.set_content(
        """<label>Colour <select id=col><option>Red</option><option>Blue</option></select></label>
        <label for=size>Size</label><select id=size><option>S</option><option>M</option></select>
        <input type=checkbox id=agree><label for=agree>I agree to the terms</label>
        <label><input type=radio name=ship value=fast id=fast> Express shipping</label>"""
    )
    await (await locate(page, "colour", "select", timeout=2)).select_option(label="Blue")
    await (await locate(page, "Size", "select", timeout=2)).select_option(label="M")
    await (await locate(page, "I agree to the terms", "check", timeout=2)).check()
    await (await locate(page, "express", "check", timeout=2)).check()
    state = await page.evaluate("[col.value, size.value, agree.checked, fast.checked]")
    assert state == ["Blue", "M", True, True]


@pytest.mark.anyio
async def test_exact_match_beats_substring_and_document_order(page: Page) -> None:
    await page.set_content(
        """<button id=long>Add to cart</button> <a id=first href="#">Add</a> <button id=second>add</button>
        <span id=word>Details</span> <div id=more style="cursor:pointer" onclick="1">Details</div>"""
    )
    assert await tag_and_id(page, "Add") == "a#first"
    assert await tag_and_id(page, "add to") == "button#long"
    # Both say "Details" exactly; the one that looks clickable wins.
    assert await tag_and_id(page, "details") == "div#more"


@pytest.mark.anyio
async def test_hidden_elements_are_ignored(page: Page) -> None:
    await page.set_content(
        """<button id=gone style="display:none">Buy</button>
        <div style="visibility:hidden"><button id=invisible>Buy</button></div>
        <button id=shown>Buy</button>
        <input id=h1 type=hidden name=email><input id=e placeholder="Email" style="display:none">
        <input id=e2 aria-label="Email">"""
    )
    assert await tag_and_id(page, "buy") == "button#shown"
    assert await tag_and_id(page, "email", "fill") == "input#e2"


@pytest.mark.anyio
async def test_not_found_names_what_the_page_offers(page: Page) -> None:
    await page.set_content(
        """<button>Save</button><a href="#">Help centre</a><button style="display:none">Secret</button>
        <label>City <input></label>"""
    )
    with anyio.fail_after(TEST_SECONDS), pytest.raises(ElementNotFound) as caught:
        await locate(page, "Checkout", "click", timeout=0.3)
    message = str(caught.value)
    assert '"Checkout"' in message
    assert '"Save"' in message
    assert '"Help centre"' in message
    assert "Secret" not in message
    assert caught.value.code == "ELEMENT_NOT_FOUND"
    assert await candidate_names(page, "fill") == ["City"]
    with pytest.raises(ElementNotFound, match='"City"'):
        await locate(page, "Save", "fill", timeout=0.2)


@pytest.mark.anyio
async def test_waits_boundedly_for_late_elements_and_text(page: Page) -> None:
    await page.set_content(
        """<script>setTimeout(() => {
            document.body.insertAdjacentHTML('beforeend', '<button id=late>Continue</button><p>Thanks, Bob!</p>');
        }, 300)</script>"""
    )
    with anyio.fail_after(TEST_SECONDS):
        assert await tag_and_id(page, "Continue") == "button#late"
        found = await wait_for_text(page, "thanks, bob", timeout=2)
        assert await found.inner_text() == "Thanks, Bob!"
        with pytest.raises(ElementNotFound, match=r"Goodbye.*Thanks, Bob"):
            await wait_for_text(page, "Goodbye", timeout=0.3)


@pytest.mark.anyio
async def test_iframe_and_shadow_content_are_found(page: Page, site: PageServer) -> None:
    site.add("/inner", "<label>Card number <input id=card></label><button onclick='done=1'>Pay now</button>")
    url = site.add(
        "/outer",
        """<h1>Checkout</h1><iframe src="/inner"></iframe><shadow-box></shadow-box>
        <script>customElements.define('shadow-box', class extends HTMLElement {
          constructor() { super(); this.attachShadow({mode: 'open'}).innerHTML = '<button id=sb>Shadow OK</button>'; }
        });</script>""",
    )
    await page.goto(url)
    await (await locate(page, "card number", "fill", timeout=2)).fill("4242")
    await (await locate(page, "Pay now", "click", timeout=2)).click()
    inner = page.frames[1]
    assert await inner.evaluate("[card.value, window.done]") == ["4242", 1]
    assert await tag_and_id(page, "shadow ok") == "button#sb"


@pytest.mark.anyio
async def test_cross_origin_frames_are_not_searched_and_navigation_is_survived(page: Page, site: PageServer) -> None:
    port = site.base.rsplit(":", 1)[1]
    site.add("/foreign", "<button>Foreign button</button>")
    site.add("/host", f"<iframe src='http://other.localhost:{port}/foreign'></iframe><p>Host page</p>")
    await page.goto(site.base + "/host")
    foreign = page.frames[1]
    assert await foreign.get_by_role("button", name="Foreign button").count() == 1
    with pytest.raises(ElementNotFound, match="shows no button, link or other clickable element at all"):
        await locate(page, "Foreign button", "click", timeout=0.3)
    site.add("/arrived", "<button id=here>Arrived</button>")
    site.add("/leaving", "<script>setTimeout(() => { location.href = '/arrived'; }, 200);</script><p>Leaving</p>")
    await page.goto(site.base + "/leaving")
    with anyio.fail_after(TEST_SECONDS):
        assert await tag_and_id(page, "arrived") == "button#here"


# --- page_markdown ------------------------------------------------------------------------------------

CONTENT = """<!doctype html><html><head><title>Garden tools</title><style>.x { color: red }</style></head>
<body><nav><a href="/">Home</a></nav>
<h2>Spades</h2><p>Our <a href="/spades?x=1">spade range</a> is <strong>sturdy</strong>.</p>
<ul><li>Border spade</li><li>Digging spade</li></ul>
<script>var leaked = "SCRIPT-TEXT";</script><noscript>NOSCRIPT-TEXT</noscript>
<div style="display:none">DISPLAY-NONE-TEXT</div><span style="visibility:hidden">INVISIBLE-TEXT</span>
<div aria-hidden="true">ARIA-HIDDEN-TEXT</div><p hidden>HIDDEN-ATTR-TEXT</p>
<svg><text>SVG-TEXT</text></svg>
<form><input value="INPUT-VALUE" aria-label="Name"><textarea>TEXTAREA-VALUE</textarea>
<select><option>OPTION-TEXT</option></select><button>Send</button></form>
<table><caption>Prices</caption><thead><tr><th>Tool</th><th>Price</th></tr></thead>
<tbody><tr><td><a href="/spade">Spade</a> | steel</td><td>£20</td></tr></tbody></table>
<fancy-card></fancy-card>
<script>customElements.define('fancy-card', class extends HTMLElement {
  constructor() { super(); this.attachShadow({mode: 'open'}).innerHTML = '<h3>From the shadow</h3><slot></slot>'; }
});</script>
</body></html>"""


@pytest.mark.anyio
async def test_markdown_keeps_content_and_drops_hidden_script_and_values(page: Page, site: PageServer) -> None:
    await page.goto(site.add("/tools/", CONTENT))
    text = await page_markdown(page)
    assert text.startswith("# Garden tools\n")
    assert "## Spades" in text
    assert f"[spade range]({site.base}/spades?x=1)" in text
    assert f"[Home]({site.base}/)" in text
    assert "- Border spade\n- Digging spade" in text
    assert "**sturdy**" in text
    assert "### From the shadow" in text
    assert f"Prices\n\n| Tool | Price |\n| --- | --- |\n| [Spade]({site.base}/spade) \\| steel | £20 |" in text
    assert (await extract_table(page, "prices")).rows == (("Spade | steel", "£20"),)
    assert "Send" in text
    for absent in ("SCRIPT", "NOSCRIPT", "DISPLAY-NONE", "INVISIBLE", "ARIA-HIDDEN", "HIDDEN-ATTR", "SVG-TEXT"):
        assert absent not in text
    for absent in ("INPUT-VALUE", "TEXTAREA-VALUE", "OPTION-TEXT", "color: red"):
        assert absent not in text


@pytest.mark.anyio
async def test_markdown_of_main_of_one_element_and_truncated(page: Page) -> None:
    await page.set_content(
        """<title>Shop</title><header>Site header</header>
        <main><h1>Shop</h1><p>Welcome in.</p><section id=s><h2>Offers</h2><p>Two for one.</p></section></main>"""
        + "<footer>"
        + "long footer text " * 50
        + "</footer>"
    )
    whole = await page_markdown(page)
    assert whole == "# Shop\n\nWelcome in.\n\n## Offers\n\nTwo for one.\n"
    part = await page_markdown(page, page.locator("#s"))
    assert part == "## Offers\n\nTwo for one.\n"
    await page.set_content("<p>" + "word " * 2000 + "</p>")
    cut = await page_markdown(page, max_chars=300)
    assert len(cut) <= 300
    assert cut.startswith("word word")
    assert "Truncated" in cut
    with pytest.raises(ElementNotFound):
        await page_markdown(page, page.locator("#nothing-here"))


# --- extract_table ------------------------------------------------------------------------------------

TABLES = """
<h2>Opening hours</h2>
<table id=hours><thead><tr><th>Day</th><th>Opens</th></tr></thead>
<tbody><tr><td>Monday</td><td> 9:00
  am</td></tr><tr><td>Sunday</td><td>closed</td></tr></tbody></table>
<table><caption>Staff</caption><tr><th>Name</th><th>Role</th></tr><tr><td>Ann</td><td>Owner</td></tr></table>
<h3>Raw numbers</h3>
<table><tr><td>1</td><td>2</td><td>3</td></tr><tr><td>4</td><td>5</td><td>6</td></tr></table>
<table aria-label="Quarterly sales">
  <tr><th>Region</th><th colspan=2>Sales</th></tr>
  <tr><td rowspan=2>North</td><td>10</td><td>20</td></tr>
  <tr><td colspan=2>30</td></tr></table>
<table style="display:none"><caption>Secret prices</caption><tr><td>x</td></tr></table>
<div role=table aria-label="Aria grid"><div role=row><span role=columnheader>Key</span>
  <span role=columnheader>Value</span></div><div role=row><span role=cell>a</span><span role=cell>b</span></div></div>
"""


@pytest.mark.anyio
async def test_tables_headers_spans_and_titles(page: Page) -> None:
    await page.set_content(TABLES)
    hours = await extract_table(page)
    assert hours == Table(
        title="Opening hours",
        headers=("Day", "Opens"),
        rows=(("Monday", "9:00 am"), ("Sunday", "closed")),
    )
    assert hours.records() == [{"Day": "Monday", "Opens": "9:00 am"}, {"Day": "Sunday", "Opens": "closed"}]
    staff = await extract_table(page, "staff")
    assert (staff.title, staff.headers, staff.rows) == ("Staff", ("Name", "Role"), (("Ann", "Owner"),))
    raw = await extract_table(page, "RAW")
    assert raw.title == "Raw numbers"
    assert raw.headers == ("column_1", "column_2", "column_3")
    assert raw.rows == (("1", "2", "3"), ("4", "5", "6"))
    sales = await extract_table(page, "quarterly")
    assert sales.headers == ("Region", "Sales", "Sales")
    assert sales.rows == (("North", "10", "20"), ("North", "30", "30"))
    assert sales.records()[0] == {"Region": "North", "Sales": "10", "Sales_2": "20"}
    aria = await extract_table(page, "aria grid")
    assert (aria.headers, aria.rows) == (("Key", "Value"), (("a", "b"),))
    assert aria.markdown() == "| Key | Value |\n| --- | --- |\n| a | b |"


@pytest.mark.anyio
async def test_missing_table_names_the_tables_that_exist(page: Page) -> None:
    await page.set_content(TABLES)
    with pytest.raises(ElementNotFound) as caught:
        await extract_table(page, "Secret prices")
    message = str(caught.value)
    assert "'Secret prices'" in message
    for title in ("Opening hours", "Staff", "Raw numbers", "Quarterly sales", "Aria grid"):
        assert repr(title) in message
    assert message.count("Secret prices") == 1
    await page.set_content(
        """<table><tr><td>Menu</td><td><table><caption>Inner data</caption><tr><td>1</td></tr></table></td></tr>
        </table><table role=presentation><tr><td>Layout</td></tr></table>"""
    )
    # A table holding tables, or marked presentation, is layout: the data table inside is the first one.
    assert (await extract_table(page)).title == "Inner data"
    assert "| column_1 |\n| --- |\n| 1 |" in await page_markdown(page)
    await page.set_content("<p>No tables here.</p>")
    with pytest.raises(ElementNotFound, match="no visible table"):
        await extract_table(page)


def test_table_markdown_escapes_pipes_and_handles_no_columns() -> None:
    table = Table(title=None, headers=("a|b", "c"), rows=(("1", "x|y"),))
    assert table.markdown() == "| a\\|b | c |\n| --- | --- |\n| 1 | x\\|y |"
    assert Table(title=None, headers=(), rows=()).markdown() == ""
