// Refreshes the lines table from /api/v1/lines every two seconds.
(function () {
  function cell(v, cls) { var td = document.createElement('td'); td.textContent = v; if (cls) td.className = cls; return td; }
  function ago(t) {
    var d = (Date.now() - Date.parse(t)) / 1000;
    if (!isFinite(d) || Date.parse(t) <= 0) return 'never';
    return Math.max(0, Math.round(d)) + 's ago';
  }
  function refresh() {
    fetch('/api/v1/lines', {credentials: 'same-origin'}).then(function (r) { return r.json(); }).then(function (j) {
      var tb = document.querySelector('#lines tbody');
      tb.textContent = '';
      (j.lines || []).forEach(function (l) {
        var tr = document.createElement('tr');
        tr.dataset.edge = l.edge;
        [cell(l.line), cell(l.edge), cell(l.state, 'state ' + l.state), cell(l.batch), cell(l.units_good, 'num good'),
         cell(l.units_rejected, 'num bad'), cell(l.cases_closed, 'num'), cell(l.pallets_closed, 'num'),
         cell(Math.round(l.units_per_min), 'num'), cell(l.records, 'num'), cell(l.pending_sync, 'num'),
         cell(l.quarantined, 'num'), cell(ago(l.last_seen))].forEach(function (td) { tr.appendChild(td); });
        tb.appendChild(tr);
      });
      document.getElementById('updated').textContent = new Date().toISOString();
    }).catch(function () {});
  }
  setInterval(refresh, 2000);
})();
