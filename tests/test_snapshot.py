"""Snapshots against real Chromium: what they show, what they hide, refs that last, budgets, and size."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Iterator

import anyio
import pytest
from playwright.async_api import Browser, Page

from browser_sessions.backends.local.page.snapshot import Snapshot, StaleRef, resolve_ref, take_snapshot
from browser_sessions.errors import InvalidInput
from tests.raw_browser import PageServer, raw_chromium, serve_pages

pytestmark = pytest.mark.anyio

TEST_SECONDS = 30

ORDER_FORM = """<title>Shop</title>
<header><nav aria-label="Main"><a href="/">Home</a> <a href="/about">About us</a></nav></header>
<main><h1>Price list</h1><p>Welcome home. <b>Prices</b> change daily.</p>
<form aria-label="Order">
<label>Full name <input name="name" value="Ada"></label>
<input name="city" placeholder="Your city">
<label>Password <input name="pw" type="password" value="hunter2"></label>
<label>Size <select name="size"><option>Small</option><option selected>Large</option></select></label>
<label><input type="checkbox" name="gift" checked> Gift wrap</label>
<label><input type="radio" name="ship" value="fast"> Express</label>
<textarea aria-label="Notes">ring twice</textarea>
<button type="button" disabled>Order now</button>
</form>
<table><caption>Prices</caption><thead><tr><th>Name</th><th>Price</th></tr></thead>
<tbody><tr><td><a href="#kb">Keyboard</a></td><td>$12.50</td></tr></tbody></table></main>"""


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
    context = await browser.new_context(viewport={"width": 1280, "height": 720})
    context.set_default_timeout(TEST_SECONDS * 1000)
    opened = await context.new_page()
    yield opened
    await context.close()


def ref_of(snapshot: Snapshot, name: str, role: str | None = None) -> str:
    found = [e.ref for e in snapshot.elements if e.name == name and role in (None, e.role)]
    assert len(found) == 1, (name, snapshot.text)
    return found[0]


async def test_roles_names_values_and_states(page: Page) -> None:
    with anyio.fail_after(TEST_SECONDS):
        await page.set_content(ORDER_FORM)
        snap = await take_snapshot(page)
    text = snap.text
    assert snap.title == "Shop"
    assert re.search(r'^- banner \[e\d+\]:\n  - navigation "Main" \[e\d+\]:\n    - link "Home" \[e\d+\]$', text, re.M)
    assert re.search(r'^  - heading "Price list" \[h1, e\d+\]$', text, re.M)
    assert "- text: Welcome home. Prices change daily." in text
    assert re.search(r'^    - textbox "Full name" \[e\d+\] = "Ada"$', text, re.M)
    assert re.search(r'^    - textbox "Your city" \[e\d+\]$', text, re.M)
    assert re.search(r'^    - combobox "Size" \[e\d+\] = "Large"$', text, re.M)
    assert re.search(r'^    - checkbox "Gift wrap" \[e\d+\] checked$', text, re.M)
    assert re.search(r'^    - radio "Express" \[e\d+\]$', text, re.M)
    assert re.search(r'^    - button "Order now" \[e\d+\] disabled$', text, re.M)
    table = r'^  - table "Prices" \[e\d+\]:\n    - row: Name \| Price\n    - row: link "Keyboard" \[e\d+\] \| \$12.50$'
    assert re.search(table, text, re.M)
    # Label text is the field's name, not a line of its own; a link's name is not repeated as text.
    assert "text: Full name" not in text and "text: Gift wrap" not in text and "text: Home" not in text
    by_name = {e.name: e for e in snap.elements}
    assert by_name["Full name"].role == "textbox" and by_name["Full name"].value == "Ada"
    assert by_name["Gift wrap"].checked is True and by_name["Express"].checked is False
    assert by_name["Order now"].disabled and by_name["Notes"].value == "ring twice"
    assert all(e.in_viewport for e in snap.elements)
    # A password's value never leaves the page.
    assert by_name["Password"].value is None
    assert "hunter2" not in text and "hunter2" not in snap.render() and "hunter2" not in repr(snap)
    assert [e.ref for e in snap.elements] == sorted((e.ref for e in snap.elements), key=lambda r: int(r[1:]))
    assert snap.element(by_name["Full name"].ref) == by_name["Full name"]
    assert snap.element("e999") is None


async def test_every_page_string_goes_through_redact(page: Page, site: PageServer) -> None:
    # A long run is cut after redaction, so a secret across the cut does not leave half of itself behind.
    long_run = "<p>" + "x" * 290 + " Ada Lovelace</p>"
    url = site.add("/secret-Ada", ORDER_FORM.replace("<title>Shop", "<title>Shop Ada") + long_run)
    with anyio.fail_after(TEST_SECONDS):
        await page.goto(url)
        snap = await take_snapshot(page, redact=lambda s: s.replace("Ada Lovelace", "[AL]").replace("Ada", "[A]"))
    rendered = snap.render()
    assert "Ada" not in rendered and "Ada" not in snap.url and "Ada" not in snap.title
    assert snap.url.endswith("/secret-[A]") and snap.title == "Shop [A]"
    assert '= "[A]"' in rendered and "x [AL]" in rendered
    assert "Ada" not in repr(snap.elements) and "Ada" not in snap.render(find="x [al]")


async def test_handler_only_and_pointer_elements_get_refs_that_click(page: Page) -> None:
    with anyio.fail_after(TEST_SECONDS):
        await page.set_content(
            """<p>To continue read <span onclick="window.hits.push('span')">here</span> first.</p>
            <div id=card style="cursor:pointer"><span>Open card</span> <b>now</b></div>
            <script>window.hits = []; card.addEventListener('click', () => hits.push('card'));</script>"""
        )
        snap = await take_snapshot(page)
        span, card = ref_of(snap, "here", "clickable"), ref_of(snap, "Open card now", "clickable")
        # The card's children inherit its cursor; they are not separate clickables.
        assert [e.role for e in snap.elements] == ["clickable", "clickable"]
        assert f'- clickable "here" [{span}]' in snap.text and "- text: To continue read" in snap.text
        await (await resolve_ref(page, span)).click()
        await (await resolve_ref(page, card)).click()
        assert await page.evaluate("window.hits") == ["span", "card"]


async def test_same_and_cross_origin_iframes_get_frame_refs_that_click(page: Page, site: PageServer) -> None:
    inner = site.add(
        "/inner",
        """<title>Pay</title><label>Card number <input></label>
        <button onclick="document.title = 'paid'">Pay</button>""",
        host="b.localhost",
    )
    outer = site.add(
        "/outer",
        f"""<title>Checkout</title><h1>Checkout</h1>
        <iframe title="payment" src="{inner}" width=400 height=150></iframe>
        <iframe title="notes"
          srcdoc="<button onclick='parent.document.title = &quot;noted&quot;'>Note</button>"></iframe>
        <div id=host></div>
        <script>host.attachShadow({{mode: 'open'}}).innerHTML =
          '<iframe title=shadowed srcdoc="<button>Deep</button>"></iframe>';</script>""",
        host="a.localhost",
    )
    with anyio.fail_after(TEST_SECONDS):
        await page.goto(outer)
        await page.wait_for_function(
            "document.querySelector('#host').shadowRoot.querySelector('iframe').contentDocument?.querySelector('button')"
        )
        snap = await take_snapshot(page)
        blocked = "() => { try { return frames[0].document.title; } catch (e) { return 'cross-origin'; } }"
        assert await page.evaluate(blocked) == "cross-origin"
    assert len(page.frames) == 4
    pay, card, note, deep = (ref_of(snap, name) for name in ("Pay", "Card number", "Note", "Deep"))
    frame_refs = {ref.split("e")[0] for ref in (pay, note, deep)}
    assert len(frame_refs) == 3 and all(re.fullmatch(r"f\d", f) for f in frame_refs) and card.startswith(pay[:2])
    assert f'- iframe "payment" [{pay[:2]}]:\n  - textbox "Card number" [{card}]\n  - button "Pay" [{pay}]' in snap.text
    assert snap.render(ref=pay[:2]).startswith(f'- iframe "payment" [{pay[:2]}]:\n  - textbox "Card number"')
    # The iframe in a shadow root is not in window.frames; it is found through its element.
    assert re.search(rf'^- iframe "shadowed" \[{deep[:2]}\]:\n  - button "Deep" \[{deep}\]$', snap.text, re.M)
    with anyio.fail_after(TEST_SECONDS):
        await (await resolve_ref(page, card)).fill("4242")
        await (await resolve_ref(page, pay)).click()
        cross = next(f for f in page.frames if f.url == inner)
        assert await cross.evaluate("[document.title, document.querySelector('input').value]") == ["paid", "4242"]
        await (await resolve_ref(page, note)).click()
        assert await page.title() == "noted"
        await (await resolve_ref(page, deep)).click()
        assert await (await resolve_ref(page, pay[:2])).get_attribute("title") == "payment"
        again = await take_snapshot(page)
        assert ref_of(again, "Pay") == pay and ref_of(again, "Deep") == deep
        assert [(e.ref, e.value) for e in again.elements if e.name == "Card number"] == [(card, "4242")]
        # A removed frame takes its refs along; a frame added later gets a number never used before.
        await page.evaluate("document.querySelector('iframe[title=payment]').remove()")
        for gone in (pay, pay[:2]):
            with pytest.raises(StaleRef):
                await resolve_ref(page, gone)
        await page.evaluate(
            """() => new Promise(done => {
              const f = Object.assign(document.createElement('iframe'), {srcdoc: '<button>Later</button>'});
              f.onload = done; document.body.append(f);
            })"""
        )
        last = await take_snapshot(page)
    assert "Pay" not in last.text and int(ref_of(last, "Later")[1]) == 4


async def test_shadow_dom_dialog_details_and_contenteditable(page: Page) -> None:
    with anyio.fail_after(TEST_SECONDS):
        await page.set_content(
            """<div id=host></div>
            <details><summary>More</summary><p>Tucked away</p></details>
            <details open><summary>Shown</summary><p>Out in the open</p></details>
            <div contenteditable aria-label="Comment">Hello <b>there</b></div>
            <dialog id=d aria-label="Confirm"><p>Really delete?</p><button>Delete</button></dialog>
            <div role=dialog aria-label="Cookies"><button>Accept</button></div>
            <script>
              host.attachShadow({mode: 'open'}).innerHTML = '<p>Shadow text</p><button>Shadow button</button>';
              host.shadowRoot.querySelector('button').onclick = () => document.title = 'shadow';
            </script>"""
        )
        before = await take_snapshot(page)
        await (await resolve_ref(page, ref_of(before, "Shadow button"))).click()
        assert await page.title() == "shadow"
        assert "Delete" not in before.text  # a closed dialog is not shown
        await page.evaluate("d.showModal()")
        snap = await take_snapshot(page)
    text = snap.text
    assert re.search(r'^- text: Shadow text\n- button "Shadow button" \[e\d+\]$', text, re.M)
    assert re.search(r'^- button "More" \[e\d+\] collapsed$', text, re.M) and "Tucked away" not in text
    assert re.search(r'^- button "Shown" \[e\d+\] expanded\n- text: Out in the open$', text, re.M)
    assert re.search(r'^- textbox "Comment" \[e\d+\] = "Hello there"$', text, re.M)
    assert re.search(r'^- dialog "Confirm" \[e\d+\] modal:\n  - text: Really delete\?\n  - button "Delete"', text, re.M)
    assert re.search(r'^- dialog "Cookies" \[e\d+\]:\n  - button "Accept" \[e\d+\]$', text, re.M)


async def test_hidden_content_is_absent(page: Page) -> None:
    with anyio.fail_after(TEST_SECONDS):
        await page.set_content(
            """<p>Visible words</p>
            <div style="display:none"><button>Gone one</button>none-text</div>
            <div style="visibility:hidden">vis-hidden <button>Gone two</button>
              <span style="visibility:visible">Peeks out</span></div>
            <div aria-hidden="true">aria-text <a href="#">Gone three</a></div>
            <div style="width:0;height:0;overflow:hidden">zero-text <button>Gone four</button></div>
            <button hidden>Gone five</button><input type="hidden" value="gone-six">
            <script>var scriptText = 1;</script><style>.style-text {}</style>
            <template><button>Gone seven</button></template><noscript>noscript-text</noscript>
            <svg width=20 height=20><text>svg-text</text></svg>
            <details><summary>Open me</summary><button>Gone eight</button></details>
            <dialog><button>Gone nine</button></dialog>"""
        )
        snap = await take_snapshot(page)
    for absent in ["Gone", "none-text", "vis-hidden", "aria-text", "zero-text", "gone-six", "scriptText",
                   "style-text", "noscript-text", "svg-text"]:  # fmt: skip
        assert absent not in snap.text, absent
    assert "- text: Visible words" in snap.text and "- text: Peeks out" in snap.text
    assert [e.name for e in snap.elements] == ["Open me"]


async def test_refs_are_stable_and_removed_elements_go_stale(page: Page, site: PageServer) -> None:
    with anyio.fail_after(TEST_SECONDS):
        await page.set_content(ORDER_FORM)
        first = await take_snapshot(page)
        second = await take_snapshot(page)
        assert [e.ref for e in first.elements] == [e.ref for e in second.elements]
        assert first.text == second.text
        await page.evaluate(
            """() => {
              document.querySelector('main').insertAdjacentHTML('afterbegin', '<button>New first</button>');
              document.querySelector('p').textContent = 'Changed words';
              const clone = document.querySelector('nav a').cloneNode(true);  // copies data-bs-ref too
              clone.textContent = 'Copy'; clone.style.display = 'none'; document.body.append(clone);
            }"""
        )
        third = await take_snapshot(page)
        old = {e.name: e.ref for e in first.elements}
        assert all(old[e.name] == e.ref for e in third.elements if e.name in old)
        assert int(ref_of(third, "New first")[1:]) > max(int(r[1:]) for r in old.values())
        home = await resolve_ref(page, old["Home"])  # the hidden clone does not make it ambiguous
        assert await home.count() == 1 and await home.inner_text() == "Home"
        await page.evaluate("document.querySelector('button[disabled]').remove()")
        with pytest.raises(StaleRef) as stale:
            await resolve_ref(page, old["Order now"])
        assert str(stale.value) == f"ref {old['Order now']} is gone from the page; call browser_snapshot for fresh refs"
        assert stale.value.code == "STALE_REF" and isinstance(stale.value, InvalidInput)
        fourth = await take_snapshot(page)
        with pytest.raises(StaleRef):
            fourth.render(ref=old["Order now"])
        for bad in ["12", "e0", "x3", "e12 ", "", "f", "e1f1"]:
            with pytest.raises(InvalidInput, match="is not a ref") as malformed:
                await resolve_ref(page, bad)
            assert not isinstance(malformed.value, StaleRef)
            with pytest.raises(InvalidInput, match="is not a ref"):
                fourth.render(ref=bad)
        with pytest.raises(StaleRef):
            await resolve_ref(page, "f9e1")
        # A new document never hands out refs the old one used.
        await page.goto(site.add("/next", "<button>Elsewhere</button>"))
        with pytest.raises(StaleRef):
            await resolve_ref(page, old["Home"])
        fifth = await take_snapshot(page)
        assert int(ref_of(fifth, "Elsewhere")[1:]) > max(int(e.ref[1:]) for e in fourth.elements)


def huge_page() -> str:
    parts = ["<title>Big</title><header><nav aria-label=Top><a href='#top'>Top</a> <a href='#end'>End</a></nav>"]
    parts.append("</header><main><h1>Catalogue</h1>")
    for i in range(3000):
        if i % 300 == 0:
            parts.append(f"<h2>Chapter {i // 300}</h2><section aria-label='Part {i // 300}'>")
        parts.append(f"<p>Paragraph {i} says something moderately long about item {i} and its many virtues.</p>")
        if i % 6 == 0:
            parts.append(f"<a href='#item{i}'>Item link {i}</a>")
        if i % 1000 == 500:
            parts.append(
                f"<form aria-label='Form {i}'><label>Quantity {i} <input value='{i}'></label>"
                f"<label><input type=checkbox> Wrap {i}</label><button type=button>Buy {i}</button></form>"
            )
        if i % 300 == 299:
            parts.append("</section>")
    parts.append("<p>Needle in the haystack.</p></main><footer><a href='#contact'>Contact</a></footer>")
    return "".join(parts)


async def test_budget_on_a_huge_page(page: Page) -> None:
    with anyio.fail_after(TEST_SECONDS):
        await page.set_content(huge_page())
        await take_snapshot(page)  # the first walk also compiles the script
        started = time.perf_counter()
        snap = await take_snapshot(page)
        seconds = time.perf_counter() - started
        assert seconds < 1.0, seconds  # about 0.1 s here
        assert len(snap.elements) > 500
        for max_chars in (8000, 3000):
            shown = snap.render(max_chars=max_chars)
            assert len(shown) <= max_chars
            assert shown.startswith("url: about:blank\ntitle: Big\n")
            assert f"[snapshot truncated: {len(snap.text) + 28:,} chars in full" in shown
            assert "outline (headings and landmarks" in shown and 'heading "Chapter 1"' in shown
            assert 'heading "Chapter 9"' in shown or max_chars < 8000
            assert all(f"[{e.ref}]" in shown for e in snap.elements if e.in_viewport)
        # Scrolled to the middle: the view moves, the refs stay.
        await page.get_by_text("Paragraph 1500 ").scroll_into_view_if_needed()
        middle = await take_snapshot(page)
        shown = middle.render()
        assert len(shown) <= 8000 and "Paragraph 1500 " in shown and "Paragraph 10 " not in shown
        seen = [e for e in middle.elements if e.in_viewport]
        assert seen and all(f"[{e.ref}]" in shown for e in seen)
        assert {e.ref: e.name for e in middle.elements} == {e.ref: e.name for e in snap.elements}


async def test_ref_renders_a_subtree_and_find_shows_paths(page: Page) -> None:
    with anyio.fail_after(TEST_SECONDS):
        await page.set_content(ORDER_FORM + "<h2>Notes</h2><p>Ship on Mondays.</p><h2>Later</h2><p>Elsewhere</p>")
        snap = await take_snapshot(page)
    refs = dict(re.findall(r'^ *- (main|form "Order"|heading "\w+ ?\w*") \[(?:h\d, )?(e\d+)\]', snap.text, re.M))
    main, form = refs["main"], refs['form "Order"']
    price_list, notes = refs['heading "Price list"'], refs['heading "Notes"']
    button = ref_of(snap, "Order now")
    part = snap.render(ref=form)
    assert part.startswith(f'- form "Order" [{form}]:\n  - textbox "Full name"') and part.endswith("disabled")
    assert "Price list" not in part and "Keyboard" not in part
    # A heading's subtree is its section: up to the next heading of its level.
    assert snap.render(ref=notes) == f'- heading "Notes" [h2, {notes}]\n- text: Ship on Mondays.'
    assert snap.render(ref=button) == f'- button "Order now" [{button}] disabled'
    assert snap.render(find="ORDER now") == (
        'find "order now": 1 match\n'
        f'main [{main}] > heading "Price list" [h1, {price_list}] > form "Order" [{form}] > '
        f'button "Order now" [{button}] disabled'
    )
    # Outside any container, the nearest heading before the line says where it is.
    assert snap.render(find="mondays").splitlines()[1:] == [f'heading "Notes" [h2, {notes}] > text: Ship on Mondays.']
    assert snap.render(find="no such words") == 'find "no such words": 0 matches'
    assert snap.render(find="keyboard", ref=form) == 'find "keyboard": 0 matches'
    assert len(snap.render(find="e", max_chars=120)) <= 120
    with pytest.raises(InvalidInput):
        snap.render(find="   ")


POST = """<article><h2><a href="/post/{i}">Post number {i}</a></h2>
<p>Posted by <a href="/u/{i}">author {i}</a> on day {i}. <em>Short</em> summary, with a <a href="/tag/{i}">tag</a>.</p>
<ul><li><a href="/post/{i}#c">Comments</a></li><li><button>Like</button></li><li>{i} likes</li></ul></article>"""


async def test_smaller_than_playwright_aria_snapshot(page: Page) -> None:
    blog = "".join(POST.format(i=i) for i in range(20)) + "<footer><p>© Shop</p><a href='/privacy'>Privacy</a></footer>"
    with anyio.fail_after(TEST_SECONDS):
        for html in (ORDER_FORM, ORDER_FORM + blog):
            await page.set_content(html)
            ours = (await take_snapshot(page)).render(max_chars=1_000_000)
            theirs = await page.aria_snapshot(mode="ai")
            assert len(ours) * 2 <= len(theirs), (len(ours), len(theirs))
