// Polls an export job's progress until it is done or failed.
(function () {
  var el = document.getElementById('job');
  if (!el) return;
  var id = el.dataset.id;
  function poll() {
    fetch('/api/v1/exports/' + id, {credentials: 'same-origin'}).then(function (r) { return r.json(); }).then(function (j) {
      document.getElementById('state').textContent = j.state;
      document.getElementById('phase').textContent = (j.progress && j.progress.phase) || '';
      var bar = document.getElementById('bar');
      if (j.progress) { bar.max = j.progress.total || 1; bar.value = j.progress.done; }
      document.getElementById('count').textContent = (j.progress ? j.progress.done + ' / ' + j.progress.total : '');
      document.getElementById('error').textContent = j.error || '';
      if (j.state === 'done') {
        document.getElementById('done').hidden = false;
        if (j.verified === false) document.getElementById('verified').textContent = 'CHAIN VERIFICATION FAILED: see the package';
        else if (j.verified) document.getElementById('verified').textContent = 'chain verified';
        return;
      }
      if (j.state !== 'failed') setTimeout(poll, 500);
    }).catch(function () { setTimeout(poll, 2000); });
  }
  poll();
})();
