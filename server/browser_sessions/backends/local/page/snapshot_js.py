"""The page side of ``snapshot``: one walk per frame, and the check behind ``resolve_ref``.

``SNAPSHOT_JS`` takes the frame's ref floor (the highest ref Python has seen in this frame, so a new document
never reuses an old document's refs) and returns a JSON string (one string crosses the wire much faster than
a large object graph) of ``{title, vh, vw, idx, next, nodes}``. ``idx`` is the frame's index in its parent's
``window.frames`` (-1 for the main frame or when unknown); ``next`` is the registry's next ref number.

Nodes, each with its box relative to the frame's viewport (``y``, ``h``) and ``v`` = intersects the viewport:

- ``{k:'t', t}`` a run of text (inline content merged, whitespace collapsed);
  any node with ``il`` continues the inline flow of the node before it (text and links of one paragraph);
- ``{k:'i', n}`` an image with alt text (or a titled svg);
- ``{k:'e', r, role, n, ni?, val?, chk?, dis?, exp?, c?}`` an actionable element; ``ni`` says the name was taken
  from the element's content, which stays in ``c`` because it holds other structure;
- ``{k:'c', role, r?, n, lvl?, modal?, c}`` a container: landmark, heading, list, table (rows as ``{k:'row',
  c: [{k:'cell', c}]}``), form, dialog; a heading keeps only its non-text children;
- ``{k:'f', r, n, fi}`` an ``<iframe>``; ``fi`` is its index in ``window.frames`` (-1 when not listed there).

Refs live in ``window.__bsRefs`` (element -> ref in a WeakMap, ref -> WeakRef), so an element keeps its ref
for as long as it exists, and in a ``data-bs-ref`` attribute that Playwright locators can find. Attributes are
written after the walk: writing them while reading styles would force a style recalculation per element.
"""

from __future__ import annotations

SNAPSHOT_JS = r"""(floor) => {
  let reg = window.__bsRefs;
  if (!reg) {
    reg = {next: 1, byEl: new WeakMap(), byRef: new Map()};
    Object.defineProperty(window, '__bsRefs', {value: reg, configurable: true});
  }
  reg.next = Math.max(reg.next, floor + 1);
  for (const [r, w] of reg.byRef) if (!w.deref()) reg.byRef.delete(r);
  const marks = [];
  const refOf = e => {
    let r = reg.byEl.get(e);
    if (!r) { r = 'e' + reg.next++; reg.byEl.set(e, r); reg.byRef.set(r, new WeakRef(e)); }
    if (e.getAttribute('data-bs-ref') !== r) marks.push([e, r]);
    return r;
  };
  // Strings are cut in Python, after redaction, so that a cut never leaves half a secret; MAXT only bounds
  // absurd pages.
  const VW = innerWidth, VH = innerHeight, MAXT = 100000, SKIPPED = {};
  const norm = s => (s || '').replace(/\s+/g, ' ');
  const clean = s => norm(s).trim();
  const place = r => ({y: Math.round(r.top), h: Math.round(r.height),
    v: r.bottom > 0 && r.top < VH && r.right > 0 && r.left < VW && r.width + r.height > 0 ? 1 : 0});
  const SKIP = new Set(['script', 'style', 'template', 'noscript', 'head', 'datalist', 'option', 'optgroup',
    'object', 'embed', 'canvas', 'map', 'audio', 'video', 'math']);
  const ACT = new Set(['button', 'link', 'checkbox', 'radio', 'switch', 'tab', 'menuitem', 'menuitemcheckbox',
    'menuitemradio', 'option', 'treeitem', 'slider', 'spinbutton', 'textbox', 'searchbox', 'combobox', 'listbox']);
  const BOX = new Set(['navigation', 'main', 'banner', 'contentinfo', 'complementary', 'region', 'form', 'search',
    'dialog', 'alertdialog', 'list', 'menu', 'menubar', 'tablist', 'toolbar', 'radiogroup', 'tree']);
  const BOX_TAG = {nav: 'navigation', main: 'main', aside: 'complementary', form: 'form', search: 'search',
    ul: 'list', ol: 'list', menu: 'list', dialog: 'dialog', header: 'banner', footer: 'contentinfo', section: 'region'};
  const INPUT = {checkbox: 'checkbox', radio: 'radio', range: 'slider', number: 'spinbutton', search: 'searchbox',
    button: 'button', submit: 'button', reset: 'button', image: 'button', file: 'button', color: 'button'};
  const SELECTED = new Set(['tab', 'option', 'treeitem']);

  const kids = n => {
    if (n.shadowRoot) return n.shadowRoot.childNodes;
    if (n.localName === 'slot') { const a = n.assignedNodes({flatten: true}); if (a.length) return a; }
    if (n.localName === 'details' && !n.open) return [...n.children].filter(c => c.localName === 'summary').slice(0, 1);
    return n.childNodes;
  };
  const explicit = e => {
    const ids = (e.getAttribute('aria-labelledby') || '').split(/\s+/).filter(Boolean), root = e.getRootNode();
    const by = ids.map(id => (root.getElementById ? root : document).getElementById(id)?.textContent).join(' ');
    return clean(by) || clean(e.getAttribute('aria-label'));
  };
  // Label text without the option lists of selects or the contents of textareas it may wrap.
  const textIn = root => {
    let out = '';
    const w = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    for (let t = w.nextNode(); t && out.length < 500; t = w.nextNode()) {
      if (!t.parentElement?.closest('select,textarea,script,style,noscript,template')) out += t.data;
    }
    return clean(out);
  };
  const labels = e => e.labels ? clean([...e.labels].map(textIn).join(' ')) : '';
  const aria = (e, a) => {
    const v = e.getAttribute(a);
    return v === 'true' ? true : v === 'false' ? false : undefined;
  };
  const shown = e => { const s = getComputedStyle(e), r = e.getBoundingClientRect();
    return s.display !== 'none' && s.visibility === 'visible' && r.width > 0 && r.height > 0; };
  const nativeRole = (e, tag) => {
    if (tag === 'a' || tag === 'area') return e.hasAttribute('href') ? 'link' : null;
    if (tag === 'button') return 'button';
    if (tag === 'input') {
      if (e.type === 'hidden') return null;
      return e.type === 'checkbox' && e.getAttribute('role') === 'switch' ? 'switch'
        : INPUT[e.type] || (e.list ? 'combobox' : 'textbox');
    }
    if (tag === 'select') return e.multiple || e.size > 1 ? 'listbox' : 'combobox';
    if (tag === 'textarea') return 'textbox';
    if (tag === 'summary') return e.parentElement?.localName === 'details' ? 'button' : null;
    return e.isContentEditable && !e.parentElement?.isContentEditable ? 'textbox' : null;
  };
  const isTable = (e, role) => ['table', 'grid', 'treegrid'].includes(role)
    || e.localName === 'table' && role !== 'presentation' && role !== 'none' && !e.querySelector('table');
  const rowsOf = t => t.localName === 'table' ? [...t.rows].map(r => [r, [...r.cells]])
    : [...t.querySelectorAll('[role=row]')]
      .filter(r => r.closest('table,[role=table],[role=grid],[role=treegrid]') === t)
      .map(r => [r, [...r.querySelectorAll('[role=cell],[role=gridcell],[role=columnheader],[role=rowheader]')]
        .filter(c => c.closest('[role=row]') === r)]);
  const frameIndex = f => {
    const w = f.contentWindow;
    for (let i = 0; w && i < window.length; i++) if (window[i] === w) return i;
    return -1;
  };
  const finish = acc => {
    let j = 0;
    for (const x of acc) {
      if (x.k === 't') { x.t = x.t.trim(); if (!x.t) continue; if (x.t.length > MAXT) x.t = x.t.slice(0, MAXT) + '…'; }
      acc[j++] = x;
    }
    acc.length = j;
    return acc;
  };
  const walk = (e, ctx) => { const acc = []; for (const k of kids(e)) visit(k, ctx, acc); return finish(acc); };
  const flat = c => clean(c.map(x => x.k === 't' ? x.t : x.n).join(' '));
  // Text directly inside a tall block is placed by its own range, not by the block's top.
  const textRect = (n, rect) => {
    if (rect.height <= VH) return rect;
    const range = document.createRange(); range.selectNodeContents(n); return range.getBoundingClientRect();
  };
  const addText = (acc, t, rect) => {
    const last = acc[acc.length - 1];
    if (acc.open && last && last.k === 't') {
      if (last.t.length <= MAXT) last.t += t;
      if (!last.v) last.v = place(rect).v;
    } else { acc.push({k: 't', t, ...place(rect), ...(acc.flow ? {il: 1} : {})}); acc.open = acc.flow = true; }
  };

  // ctl: the hidden control a label stands for; leaf: the name of an element whose inside is not walked (img, svg).
  const actNode = (e, tag, role, sub, r, ctl, leaf) => {
    const n = {k: 'e', r: refOf(e), role, ...place(r)};
    const it = ctl || e, itag = it.localName;
    const chk = itag === 'input' && (it.type === 'checkbox' || it.type === 'radio') ? it.checked
      : aria(e, 'aria-checked') ?? aria(e, 'aria-pressed')
        ?? (SELECTED.has(role) ? aria(e, 'aria-selected') : undefined);
    if (chk !== undefined) n.chk = chk;
    const exp = tag === 'summary' ? e.parentElement.open : aria(e, 'aria-expanded');
    if (exp !== undefined) n.exp = exp;
    if (it.matches(':disabled') || e.getAttribute('aria-disabled') === 'true') n.dis = 1;
    if (leaf !== undefined) { n.n = leaf; return n; }
    const own = explicit(e);
    if (!ctl && (itag === 'input' || itag === 'select' || itag === 'textarea')) {
      const type = itag === 'input' ? e.type : '';
      const button = ['submit', 'reset', 'button', 'image'].includes(type);
      n.n = own || labels(e) || clean(e.title) || clean(e.placeholder) || (type === 'image' ? clean(e.alt) : '')
        || (button ? clean(e.value) || {submit: 'Submit', reset: 'Reset', image: 'Submit'}[type] || '' : '')
        || (type === 'file' ? 'Choose file' : '');
      if (itag === 'select') n.val = [...e.selectedOptions].map(o => clean(o.label || o.text)).join(', ');
      else if (!button && !['checkbox', 'radio', 'password', 'file'].includes(type)) n.val = e.value.slice(0, MAXT);
      return n;
    }
    if (!ctl && (e.isContentEditable || ['textbox', 'searchbox', 'combobox'].includes(role))) {
      n.n = own || labels(e) || clean(e.title) || clean(e.getAttribute('aria-placeholder'));
      n.val = clean(e.innerText).slice(0, MAXT);
      return n;
    }
    if (!ctl && (role === 'slider' || role === 'spinbutton')) {
      n.n = own || labels(e) || clean(e.title);
      n.val = clean(e.getAttribute('aria-valuetext') || e.getAttribute('aria-valuenow'));
      return n;
    }
    sub.act = true; sub.quiet = false;
    const c = walk(e, sub);
    if (c.every(x => x.k === 't' || x.k === 'i')) { n.n = own || flat(c) || clean(e.title); return n; }
    // Content with structure of its own stays as children; the name then only repeats it, so it is marked.
    n.c = c; n.n = own || clean(e.title);
    if (!n.n) { n.n = clean(e.innerText).slice(0, MAXT); n.ni = 1; }
    return n;
  };

  // Refs are taken before the walk so that they number in document order.
  const boxNode = (e, role, sub, r, ref) => {
    const n = {k: 'c', role, n: explicit(e), ...place(r)};
    if (ref) n.r = refOf(e);
    n.c = walk(e, sub);
    return n.c.length ? n : SKIPPED;
  };

  const tableNode = (e, sub, r) => {
    const ref = refOf(e), rows = [];
    for (const [row, cells] of rowsOf(e)) {
      const rr = row.getBoundingClientRect();
      if (!rr.height || getComputedStyle(row).visibility !== 'visible') continue;
      const cs = cells.map(cell => { const c = []; visit(cell, sub, c); return {k: 'cell', c: finish(c)}; });
      if (cs.some(x => x.c.length)) rows.push({k: 'row', c: cs, ...place(rr)});
    }
    if (!rows.length) return SKIPPED;
    return {k: 'c', role: 'table', r: ref, n: explicit(e) || clean(e.caption?.innerText), c: rows, ...place(r)};
  };

  const semantic = (e, tag, role, s, ctx, sub, r, sized) => {
    if (tag === 'iframe' || tag === 'frame') {
      return {k: 'f', r: refOf(e), n: clean(e.title || e.name), fi: frameIndex(e), ...place(r)};
    }
    const pointer = e.hasAttribute('onclick') || typeof e.onclick === 'function'
      || (sub.ptr && !ctx.ptr && !ctx.act && tag !== 'label');
    if (tag === 'svg' || tag === 'img') {
      const name = explicit(e) || clean(tag === 'img' ? e.alt : e.querySelector('title')?.textContent)
        || clean(e.title);
      if (pointer && sized && !ctx.act) return actNode(e, tag, 'clickable', sub, r, null, name);
      return name ? {k: 'i', n: name, ...place(r)} : SKIPPED;
    }
    if (tag === 'label' && e.control) {
      if (shown(e.control)) { sub.quiet = true; sub.act = true; return null; }
      const role = nativeRole(e.control, e.control.localName);
      return role && sized ? actNode(e, tag, role, sub, r, e.control, undefined) : null;
    }
    const act = ACT.has(role) ? role
      : nativeRole(e, tag) || (pointer && tag !== 'body' && tag !== 'html' ? 'clickable' : null);
    if (act && sized) return actNode(e, tag, act, sub, r, null, undefined);
    if (/^h[1-6]$/.test(tag) || role === 'heading') {
      const ref = refOf(e), c = walk(e, sub), rest = c.filter(x => x.k !== 't' && x.k !== 'i');
      const name = explicit(e) || clean(e.innerText).slice(0, MAXT);  // the text of its links too
      if (!name && !rest.length) return SKIPPED;
      const lvl = +(role === 'heading' ? e.getAttribute('aria-level') || 2 : tag[1]);
      return {k: 'c', role: 'heading', r: ref, n: name, lvl, c: rest, ...place(r)};
    }
    if (isTable(e, role)) return tableNode(e, sub, r);
    let box = BOX.has(role) ? role : BOX_TAG[tag];
    if (!box) return null;
    if (box === 'alertdialog') box = 'dialog';
    const sectioned = e.parentElement?.closest('article,aside,main,nav,section');
    if ((tag === 'header' || tag === 'footer') && !role && sectioned) return null;
    if (box === 'region' && !explicit(e)) return null;
    const n = boxNode(e, box, sub, r, box !== 'list');
    const modal = e.matches(':modal') || e.getAttribute('aria-modal') === 'true';
    if (box === 'dialog' && n !== SKIPPED && modal) n.modal = 1;
    return n;
  };

  const visit = (n, ctx, acc) => {
    if (n.nodeType === 3) {
      const t = ctx.vis && !ctx.quiet ? norm(n.data) : '';
      if (t && (t !== ' ' || acc.open)) addText(acc, t, textRect(n, ctx.rect));
      return;
    }
    if (n.nodeType !== 1) return;
    const e = n, tag = e.localName;
    if (SKIP.has(tag) || e.getAttribute('aria-hidden') === 'true') return;
    if (tag === 'br') { if (acc.open) addText(acc, ' ', ctx.rect); return; }
    const s = getComputedStyle(e);
    if (s.display === 'none') return;
    const contents = s.display === 'contents', r = e.getBoundingClientRect();
    if (!contents && ((!r.width && s.overflowX !== 'visible') || (!r.height && s.overflowY !== 'visible'))) return;
    const vis = s.visibility === 'visible', inline = contents || s.display.startsWith('inline');
    const sized = contents || (r.width > 0 && r.height > 0);
    const raw = (e.getAttribute('role') || '').trim().split(/\s+/)[0];
    const role = raw === 'presentation' || raw === 'none' ? '' : raw;
    const sub = {vis, quiet: ctx.quiet, act: ctx.act, ptr: s.cursor === 'pointer' && tag !== 'body' && tag !== 'html',
      rect: contents ? ctx.rect : r};
    if (!inline) acc.open = acc.flow = false;
    const node = vis ? semantic(e, tag, role, s, ctx, sub, r, sized) : null;
    if (node === null && tag !== 'svg') for (const k of kids(e)) visit(k, sub, acc);
    else if (node !== SKIPPED) {
      if (inline && acc.flow) node.il = 1;  // part of the text around it (a link inside a paragraph)
      acc.push(node); acc.open = false; acc.flow = inline;
    }
    if (!inline) acc.open = acc.flow = false;
  };

  let idx = -1;
  try {
    if (window.parent !== window) for (let i = 0; i < parent.length; i++) if (parent[i] === window) { idx = i; break; }
  } catch (err) { idx = -1; }
  const root = document.body || document.documentElement;
  const nodes = [];
  if (root) visit(root, {vis: true, quiet: false, act: false, ptr: false, rect: root.getBoundingClientRect()}, nodes);
  finish(nodes);
  for (const [e, r] of marks) e.setAttribute('data-bs-ref', r);
  return JSON.stringify({title: document.title, vh: VH, vw: VW, idx, next: reg.next, nodes});
}"""

# Runs on every element carrying the ref's attribute: only the registered element keeps it (a page script may
# have cloned it, attribute and all); true when that element is still in the document.
RESOLVE_JS = r"""(els, ref) => {
  const live = window.__bsRefs?.byRef.get(ref)?.deref();
  for (const e of els) if (e !== live) e.removeAttribute('data-bs-ref');
  return !!live && live.isConnected && els.includes(live);
}"""
