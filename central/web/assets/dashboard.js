// Live lines dashboard: server-sent events from /api/v1/events. Each
// "lines" event carries the full view of the lines that changed; "alerts"
// carries the active alerts. Charts are inline SVG drawn here (no build
// step, no library).
(function () {
  'use strict';
  var SVG = 'http://www.w3.org/2000/svg';
  var root = document.getElementById('lines');
  var canAck = root && root.dataset.canAck === 'true';
  var cards = {};

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function svg(tag, attrs) {
    var e = document.createElementNS(SVG, tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    return e;
  }
  function ago(t) {
    var ms = Date.parse(t);
    if (!isFinite(ms) || ms <= 0) return 'never';
    return Math.max(0, Math.round((Date.now() - ms) / 1000)) + ' s ago';
  }
  function fmt(n, d) { return (n || 0).toFixed(d || 0); }

  // Pass-rate trend: one point per bucket, 0..100 %, gaps where no verdict.
  function trendChart(points) {
    var w = 240, h = 60, n = points.length || 1;
    var s = svg('svg', {viewBox: '0 0 ' + w + ' ' + h, width: w, height: h, 'class': 'trend', role: 'img'});
    s.appendChild(svg('rect', {x: 0, y: 0, width: w, height: h, 'class': 'bg'}));
    // Guide at 99 %.
    var y99 = h - (99 / 100) * (h - 4) - 2;
    s.appendChild(svg('line', {x1: 0, x2: w, y1: y99, y2: y99, 'class': 'guide'}));
    var d = '', pen = false, last = null;
    points.forEach(function (p, i) {
      var x = (i + 0.5) * w / n;
      if (p === null || p === undefined) { pen = false; return; }
      var y = h - (p / 100) * (h - 4) - 2;
      d += (pen ? 'L' : 'M') + x.toFixed(1) + ' ' + y.toFixed(1) + ' ';
      pen = true; last = p;
      s.appendChild(svg('circle', {cx: x.toFixed(1), cy: y.toFixed(1), r: 1.6, 'class': 'pt'}));
    });
    if (d) s.appendChild(svg('path', {d: d, 'class': 'line'}));
    var t = svg('title'); t.textContent = 'verification pass rate per minute' + (last !== null ? ', last ' + last + ' %' : '');
    s.appendChild(t);
    return s;
  }

  // Reject reasons as a stacked bar.
  function reasonsBar(reasons) {
    var keys = Object.keys(reasons || {}).sort();
    var total = keys.reduce(function (a, k) { return a + reasons[k]; }, 0);
    var wrap = el('div', {'class': 'reasons'});
    if (!total) { wrap.appendChild(el('span', {'class': 'muted'}, 'no rejects')); return wrap; }
    var w = 240, s = svg('svg', {viewBox: '0 0 ' + w + ' 10', width: w, height: 10, 'class': 'bar'}), x = 0;
    keys.forEach(function (k, i) {
      var bw = w * reasons[k] / total;
      var r = svg('rect', {x: x.toFixed(1), y: 0, width: bw.toFixed(1), height: 10, 'class': 'r' + (i % 6)});
      var t = svg('title'); t.textContent = k + ': ' + reasons[k]; r.appendChild(t);
      s.appendChild(r); x += bw;
    });
    wrap.appendChild(s);
    var legend = el('div', {'class': 'legend'});
    keys.forEach(function (k, i) { legend.appendChild(el('span', {'class': 'key r' + (i % 6)}, k + ' ' + reasons[k])); });
    wrap.appendChild(legend);
    return wrap;
  }

  function gauge(pct) {
    var s = svg('svg', {viewBox: '0 0 100 8', width: 100, height: 8, 'class': 'gauge'});
    s.appendChild(svg('rect', {x: 0, y: 0, width: 100, height: 8, 'class': 'bg'}));
    s.appendChild(svg('rect', {x: 0, y: 0, width: Math.max(0, Math.min(100, pct)).toFixed(1), height: 8, 'class': 'fill'}));
    return s;
  }

  function kv(dl, k, v, cls, field) {
    dl.appendChild(el('dt', {}, k));
    var dd = el('dd', cls ? {'class': cls} : {}, v);
    if (field) dd.dataset.f = field;
    dl.appendChild(dd);
  }

  function render(l) {
    var card = el('article', {'class': 'card' + (l.stale ? ' stale' : ''), 'data-edge': l.edge});
    var h = el('h2', {}, l.line + ' '); h.appendChild(el('small', {'class': 'muted'}, l.edge)); card.appendChild(h);
    var p = el('p'); p.appendChild(el('span', {'class': 'state ' + l.state}, l.state || 'unknown'));
    p.appendChild(document.createTextNode(' batch ')); p.appendChild(el('b', {}, l.batch || '—'));
    if (l.lot) p.appendChild(document.createTextNode(' lot ' + l.lot));
    card.appendChild(p);
    var big = el('p', {'class': 'big'});
    big.appendChild(el('span', {'class': 'good', 'data-f': 'batch_good'}, String(l.batch_good)));
    big.appendChild(document.createTextNode(' good · '));
    big.appendChild(el('span', {'class': 'bad', 'data-f': 'batch_rejected'}, String(l.batch_rejected)));
    big.appendChild(document.createTextNode(' rejected (' + fmt(l.reject_rate, 1) + ' %) · '));
    big.appendChild(el('span', {'data-f': 'speed'}, fmt(l.units_per_min)));
    big.appendChild(document.createTextNode(' units/min'));
    card.appendChild(big);
    card.appendChild(el('h3', {}, 'Verification pass rate'));
    card.appendChild(trendChart(l.trend || []));
    card.appendChild(el('h3', {}, 'Reject reasons'));
    card.appendChild(reasonsBar(l.reasons));
    var agg = el('p', {'class': 'agg'}, 'Aggregation ' + fmt(l.aggregation, 1) + ' % ');
    agg.appendChild(gauge(l.aggregation || 0));
    card.appendChild(agg);
    var dl = el('dl');
    kv(dl, 'Open case', l.open_case ? l.open_case + ' (' + l.open_case_fill + ')' : '—');
    kv(dl, 'Open pallet', l.open_pallet ? l.open_pallet + ' (' + l.open_pallet_fill + ')' : '—');
    kv(dl, 'Cases / pallets closed', l.cases_closed + ' / ' + l.pallets_closed);
    kv(dl, 'Stored good / rejected', l.units_good + ' / ' + l.units_rejected, '', 'units_good');
    kv(dl, 'Records at central', String(l.records));
    kv(dl, 'Sync backlog', String(l.pending_sync), l.pending_sync > 1000 ? 'bad' : '', 'pending_sync');
    kv(dl, 'Last seen', ago(l.last_seen), l.stale ? 'bad' : '', 'last_seen');
    if (l.quarantined) kv(dl, 'Quarantined', String(l.quarantined), 'bad');
    if (l.conflicts) kv(dl, 'Identifier conflicts', String(l.conflicts), 'bad');
    var devs = Object.keys(l.devices || {}).sort();
    if (devs.length) kv(dl, 'Devices', devs.map(function (d) { return d + ': ' + l.devices[d]; }).join(', '),
      devs.some(function (d) { return l.devices[d] !== 'ok'; }) ? 'bad' : 'ok');
    if (l.alarms && l.alarms.length) kv(dl, 'Alarms', l.alarms.join(', '), 'bad');
    card.appendChild(dl);
    card.dataset.lastSeen = l.last_seen;
    return card;
  }

  function place(card, edge) {
    var old = cards[edge];
    if (old && old.parentNode) { old.parentNode.replaceChild(card, old); }
    else {
      var none = root.querySelector('.none'); if (none) none.remove();
      var after = null;
      Object.keys(cards).sort().forEach(function (k) { if (k > edge && !after) after = cards[k]; });
      root.insertBefore(card, after);
    }
    cards[edge] = card;
  }

  function onLines(ev) {
    var j = JSON.parse(ev.data);
    (j.lines || []).forEach(function (l) { place(render(l), l.edge); });
    document.getElementById('updated').textContent = j.at || new Date().toISOString();
  }

  function onAlerts(ev) {
    var j = JSON.parse(ev.data);
    var tb = document.querySelector('#alert-table tbody');
    tb.textContent = '';
    if (!j.alerts.length) { var tr0 = el('tr', {'class': 'none'}); tr0.appendChild(el('td', {colspan: 7, 'class': 'muted'}, 'No active alert.')); tb.appendChild(tr0); return; }
    j.alerts.forEach(function (a) {
      var tr = el('tr', {'data-alert': a.id});
      [a.at.replace('T', ' ').replace(/\..*Z$/, 'Z'), a.severity, a.code, a.edge || '', a.message, a.acked_by || ''].forEach(function (v, i) {
        tr.appendChild(el('td', i === 1 ? {'class': 'sev ' + a.severity} : {}, v));
      });
      var td = el('td');
      if (canAck && !a.acked_by) {
        var b = el('button', {'class': 'ack', 'data-id': a.id}, 'Acknowledge…');
        b.addEventListener('click', function () {
          var reason = window.prompt('Reason for acknowledging alert ' + a.id + ' (' + a.code + ')');
          if (!reason) return;
          fetch('/api/v1/alerts/' + a.id + '/ack', {method: 'POST', credentials: 'same-origin', headers: {'Content-Type': 'application/json'}, body: JSON.stringify({reason: reason})})
            .then(function (r) { return r.json().then(function (j) { if (!r.ok) window.alert(j.error); }); });
        });
        td.appendChild(b);
      }
      tr.appendChild(td);
      tb.appendChild(tr);
    });
  }

  // Refresh "last seen" between events.
  setInterval(function () {
    Object.keys(cards).forEach(function (k) {
      var c = cards[k], dd = c.querySelector('[data-f=last_seen]');
      if (dd) dd.textContent = ago(c.dataset.lastSeen);
    });
  }, 1000);

  root.querySelectorAll('.card').forEach(function (c) { cards[c.dataset.edge] = c; });
  var live = document.getElementById('live');
  var es = new EventSource('/api/v1/events');
  es.addEventListener('lines', onLines);
  es.addEventListener('alerts', onAlerts);
  es.onopen = function () { live.className = 'dot on'; };
  es.onerror = function () {
    live.className = 'dot off';
    // A session that ended (idle timeout, logout elsewhere) goes to the login page.
    fetch('/api/v1/alerts?active=1', {credentials: 'same-origin'}).then(function (r) {
      if (r.status === 401) { es.close(); window.location = '/login?next=/'; }
    }).catch(function () {});
  };
})();
