// Closeloop workspace: progressive enhancements. Every page works without this file.
//
// - Keyboard: j/k move among the inbox's tasks (or follow rel=next/prev links elsewhere),
//   Enter opens the selected task, x selects it for a bulk change, a assigns it to me,
//   e resolves it (with the first outcome of FOLLOWUP_OUTCOMES, named on the list), ? shows the list. On a task page, a and e click
//   the buttons marked data-key-assign-me and data-key-resolve.
// - Bulk: a select-all checkbox and a count of the selected tasks.
// - Copy: a button marked data-copy="<input id>" copies that input (a key or secret shown once).
// - Live: while the inbox is visible it asks every 3 s whether new tasks match
//   (GET data-live), and if so swaps in the fresh list, keeping checked boxes and focus.
// - Surveys: the editor's preview frames follow the form as it changes; Copy buttons copy
//   the public link.
'use strict';
(function () {
  var doc = document;
  function all(sel, root) { return Array.prototype.slice.call((root || doc).querySelectorAll(sel)); }
  function one(sel, root) { return (root || doc).querySelector(sel); }

  // ---- The inbox's rows and the selection -------------------------------------------------
  function rows() { return all('#inbox-rows tr.task'); }
  var selected = null; // the id of the selected row

  function rowOf(id) { return id ? doc.getElementById('task-' + id) : null; }

  function select(tr, focus) {
    rows().forEach(function (r) { r.classList.remove('selected'); });
    if (!tr) { selected = null; return; }
    selected = tr.getAttribute('data-id');
    tr.classList.add('selected');
    try { sessionStorage.setItem('closeloop.selected', selected); } catch (e) { /* private mode */ }
    var link = one('.row-link', tr);
    if (focus && link) { link.focus(); }
    if (focus && tr.scrollIntoView) { tr.scrollIntoView({ block: 'nearest' }); }
  }

  function move(step) {
    var list = rows();
    if (!list.length) { return; }
    var at = list.indexOf(rowOf(selected));
    var next = at < 0 ? (step > 0 ? 0 : list.length - 1) : Math.min(list.length - 1, Math.max(0, at + step));
    select(list[next], true);
  }

  // A POST through the bulk endpoint for the selected task (the same form, the same CSRF token).
  function act(fields) {
    var bulk = doc.getElementById('bulk');
    if (!bulk || !selected) { return; }
    var f = doc.createElement('form');
    f.method = 'post';
    f.action = bulk.getAttribute('action');
    f.hidden = true;
    var add = function (k, v) {
      var i = doc.createElement('input');
      i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i);
    };
    add('csrf_token', bulk.elements.csrf_token.value);
    add('return', bulk.elements['return'].value);
    add('id', selected);
    Object.keys(fields).forEach(function (k) { add(k, fields[k]); });
    doc.body.appendChild(f);
    f.submit();
  }

  // ---- The help dialog -----------------------------------------------------------------------
  function help() {
    var d = doc.getElementById('keys-help');
    if (!d) {
      d = doc.createElement('dialog');
      d.id = 'keys-help';
      var h = doc.createElement('h2');
      h.textContent = 'Keyboard shortcuts';
      d.appendChild(h);
      var dl = doc.createElement('dl');
      dl.className = 'keys';
      [['j / k', 'Next / previous'], ['a', 'Assign to me'], ['e', 'Resolve'], ['?', 'Show this list'], ['Esc', 'Close this list']]
        .forEach(function (p) {
          var dt = doc.createElement('dt'); dt.textContent = p[0];
          var dd = doc.createElement('dd'); dd.textContent = p[1];
          dl.appendChild(dt); dl.appendChild(dd);
        });
      d.appendChild(dl);
      var f = doc.createElement('form');
      f.method = 'dialog';
      var b = doc.createElement('button');
      b.type = 'submit'; b.className = 'small'; b.textContent = 'Close';
      f.appendChild(b);
      d.appendChild(f);
      doc.body.appendChild(d);
    }
    if (d.open) { return; }
    if (d.showModal) { d.showModal(); } else { d.setAttribute('open', ''); }
  }

  function typing(el) {
    if (!el) { return false; }
    if (el.isContentEditable) { return true; }
    var tag = el.tagName;
    if (tag === 'TEXTAREA' || tag === 'SELECT') { return true; }
    if (tag !== 'INPUT') { return false; }
    return ['checkbox', 'radio', 'button', 'submit', 'reset'].indexOf(el.type) < 0;
  }

  function click(sel) {
    var b = one(sel);
    if (b && !b.disabled) { b.click(); return true; }
    return false;
  }

  doc.addEventListener('keydown', function (ev) {
    if (ev.defaultPrevented || ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    if (typing(ev.target)) { return; }
    var d = doc.getElementById('keys-help');
    if (d && d.open) { return; } // the dialog handles Escape itself
    var inbox = !!doc.getElementById('inbox-rows');
    var k = ev.key;
    if (k === '?') { ev.preventDefault(); help(); return; }
    if (!inbox) {
      // A task page (or any other): generic shortcuts by attribute.
      var map = { a: '[data-key-assign-me]', e: '[data-key-resolve]', j: 'a[rel="next"]', k: 'a[rel="prev"]' };
      if (map[k] && click(map[k])) { ev.preventDefault(); }
      return;
    }
    if (k === 'j') { ev.preventDefault(); move(1); }
    else if (k === 'k') { ev.preventDefault(); move(-1); }
    else if (k === 'Enter') {
      var tr = rowOf(selected);
      var active = doc.activeElement;
      if (tr && (!active || active === doc.body || tr.contains(active)) && !(active && active.tagName === 'A')) {
        var link = one('.row-link', tr);
        if (link) { ev.preventDefault(); location.href = link.href; }
      }
    } else if (k === 'x') {
      var box = selected && one('input[name="id"]', rowOf(selected));
      if (box) { ev.preventDefault(); box.checked = !box.checked; box.dispatchEvent(new Event('change', { bubbles: true })); }
    } else if (k === 'a') {
      if (selected) { ev.preventDefault(); act({ assignee: 'me' }); }
    } else if (k === 'e') {
      if (selected) { ev.preventDefault(); act({ status: 'resolved', outcome: document.getElementById('inbox-list')?.dataset.quickOutcome || 'resolved_issue' }); }
    }
  });

  // Clicking in a row selects it; focusing its link too.
  doc.addEventListener('focusin', function (ev) {
    var tr = ev.target.closest && ev.target.closest('#inbox-rows tr.task');
    if (tr && tr.getAttribute('data-id') !== selected) { select(tr, false); }
  });

  // ---- Bulk selection ------------------------------------------------------------------------
  function counted() {
    var boxes = all('#inbox-rows input[name="id"]');
    var on = boxes.filter(function (b) { return b.checked; }).length;
    var head = one('[data-select-all]');
    if (head) {
      head.checked = on > 0 && on === boxes.length;
      head.indeterminate = on > 0 && on < boxes.length;
    }
    var c = doc.getElementById('sel-count');
    if (c) { c.textContent = on ? on + ' selected' : ''; }
  }

  function setupList() {
    var head = one('[data-select-all]');
    if (head) { head.hidden = false; }
    counted();
  }

  doc.addEventListener('change', function (ev) {
    var t = ev.target;
    if (t.matches && t.matches('[data-select-all]')) {
      all('#inbox-rows input[name="id"]').forEach(function (b) { b.checked = t.checked; });
    }
    if (t.matches && (t.matches('[data-select-all]') || t.matches('#inbox-rows input[name="id"]'))) { counted(); }
  });

  // ---- Live updates --------------------------------------------------------------------------
  var list = doc.getElementById('inbox-list');
  var busy = false;
  var stopped = false;

  function refresh(fresh) {
    return fetch(location.href, { credentials: 'same-origin', headers: { Accept: 'text/html' } })
      .then(function (r) {
        if (!r.ok || r.redirected) { throw new Error('status ' + r.status); }
        return r.text();
      })
      .then(function (text) {
        var page = new DOMParser().parseFromString(text, 'text/html');
        var next = page.getElementById('inbox-list');
        if (!next) { return; }
        var since = list.getAttribute('data-since');
        var checked = all('#inbox-rows input[name="id"]:checked').map(function (b) { return b.value; });
        var active = doc.activeElement;
        var focusRow = active && active.closest && active.closest('#inbox-rows tr.task');
        var focusId = focusRow ? focusRow.getAttribute('data-id') : null;
        ['.inbox-wrap', '#inbox-pager'].forEach(function (sel) {
          var a = one(sel, list);
          var b = one(sel, next);
          if (a && b) { a.replaceWith(doc.importNode(b, true)); }
        });
        var views = doc.getElementById('inbox-views');
        var nviews = page.getElementById('inbox-views');
        if (views && nviews) { views.replaceWith(doc.importNode(nviews, true)); }
        list.setAttribute('data-live', next.getAttribute('data-live'));
        list.setAttribute('data-since', next.getAttribute('data-since'));
        checked.forEach(function (id) {
          var b = one('input[name="id"]', rowOf(id));
          if (b) { b.checked = true; }
        });
        var n = 0;
        rows().forEach(function (r) {
          if (since && r.getAttribute('data-created') > since) { r.classList.add('fresh'); n += 1; }
        });
        if (selected && rowOf(selected)) { rowOf(selected).classList.add('selected'); }
        if (focusId && rowOf(focusId)) {
          var link = one('.row-link', rowOf(focusId));
          if (link) { link.focus({ preventScroll: true }); }
        }
        setupList();
        var status = doc.getElementById('live-status');
        if (status) {
          var shown = Math.max(n, fresh);
          status.textContent = shown === 1 ? '1 new task' : shown + ' new tasks';
        }
      });
  }

  function poll() {
    if (stopped || busy || !list || doc.visibilityState !== 'visible') { return; }
    busy = true;
    fetch(list.getAttribute('data-live'), { credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then(function (r) {
        if (!r.ok || r.redirected) { stopped = r.status === 403 || r.redirected; throw new Error('status ' + r.status); }
        return r.json();
      })
      .then(function (j) { return j['new'] > 0 ? refresh(j['new']) : null; })
      .catch(function () { /* try again at the next tick */ })
      .then(function () { busy = false; });
  }

  // ---- Surveys: the editor's live preview, and Copy buttons -------------------------------
  // The preview frames reload with the form's values (debounced) as they change; without
  // this file the editor's Preview button does the same with a round trip.
  var PREVIEWED = ['kind', 'question', 'follow_up_question', 'brand', 'brand_color', 'topic', 'locale'];
  function setupPreview() {
    var form = doc.getElementById('survey-form');
    if (!form || !form.getAttribute('data-preview')) { return; }
    var base = form.getAttribute('data-preview');
    var timer = null;
    function refresh() {
      var q = new URLSearchParams();
      PREVIEWED.forEach(function (name) {
        var el = form.elements[name];
        if (el) { q.set(name, el.value); }
      });
      all('iframe[data-preview-kind]').forEach(function (frame) {
        var src = base + frame.getAttribute('data-preview-kind') + '?' + q.toString();
        if (frame.getAttribute('src') !== src) { frame.setAttribute('src', src); }
      });
    }
    function later(ms) { clearTimeout(timer); timer = setTimeout(refresh, ms); }
    form.addEventListener('input', function () { later(400); });
    form.addEventListener('change', function () { later(50); });
  }

  function setupCopy() {
    all('[data-copy]').forEach(function (button) {
      var input = doc.getElementById(button.getAttribute('data-copy'));
      var field = button.closest('.copy-field');
      var status = field ? one('.copy-status', field) : null;
      if (!input) { return; }
      button.hidden = false;
      button.addEventListener('click', function () {
        function said(text) { if (status) { status.textContent = text; } }
        input.focus();
        input.select();
        if (navigator.clipboard && navigator.clipboard.writeText) {
          navigator.clipboard.writeText(input.value).then(function () { said('Copied.'); }, function () {
            said(doc.execCommand('copy') ? 'Copied.' : 'Press Ctrl+C (⌘C) to copy.');
          });
        } else {
          said(doc.execCommand('copy') ? 'Copied.' : 'Press Ctrl+C (⌘C) to copy.');
        }
      });
    });
  }

  function start() {
    setupPreview();
    setupCopy();
    setupList();
    var remembered = null;
    try { remembered = sessionStorage.getItem('closeloop.selected'); } catch (e) { /* private mode */ }
    if (remembered && rowOf(remembered)) { select(rowOf(remembered), false); }
    var open = one('[data-keys-help]');
    if (open) { open.hidden = false; open.addEventListener('click', help); }
    if (list && list.getAttribute('data-live')) {
      setInterval(poll, 3000);
      doc.addEventListener('visibilitychange', poll);
    }
  }

  if (doc.readyState === 'loading') { doc.addEventListener('DOMContentLoaded', start); } else { start(); }
}());
