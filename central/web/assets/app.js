// Page helpers: the e-signature dialog (buttons with data-sign), JSON forms
// (forms with data-api) and account changes on the users page.
(function () {
  'use strict';
  function post(url, body) {
    return fetch(url, {method: 'POST', credentials: 'same-origin', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body)})
      .then(function (r) { return r.json().then(function (j) { if (!r.ok) throw new Error(j.error || r.statusText); return j; }); });
  }

  var dlg = document.getElementById('esign');
  var form = document.getElementById('esign-form');
  var pending = null;
  function openSign(btn) {
    var params = {};
    if (btn.dataset.paramsForm) {
      var f = document.getElementById(btn.dataset.paramsForm);
      if (!f.reportValidity()) return;
      new FormData(f).forEach(function (v, k) { params[k] = v; });
    }
    pending = {action: btn.dataset.sign, target: btn.dataset.target, params: params};
    document.getElementById('esign-what').textContent = btn.dataset.what || (pending.action + ' ' + pending.target);
    var err = document.getElementById('esign-error'); err.hidden = true; err.textContent = '';
    form.reset();
    var who = document.getElementById('whoami');
    if (who) form.elements.user.value = who.dataset.user;
    dlg.showModal();
    form.elements.password.focus();
  }
  if (form) {
    document.getElementById('esign-cancel').addEventListener('click', function () { dlg.close(); });
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      var e = form.elements, body = Object.assign({}, pending, {user: e.user.value, password: e.password.value, meaning: e.meaning.value, reason: e.reason.value});
      e.password.value = '';
      var sub = document.getElementById('esign-submit'); sub.disabled = true;
      post('/api/v1/signatures', body).then(function () { dlg.close(); window.location.reload(); }).catch(function (x) {
        var err = document.getElementById('esign-error'); err.textContent = x.message; err.hidden = false;
      }).finally(function () { sub.disabled = false; });
    });
  }
  document.querySelectorAll('[data-sign]').forEach(function (b) { b.addEventListener('click', function () { openSign(b); }); });

  document.querySelectorAll('form[data-api]').forEach(function (f) {
    f.addEventListener('submit', function (ev) {
      ev.preventDefault();
      var body = {};
      new FormData(f).forEach(function (v, k) { body[k] = v; });
      post(f.dataset.api, body).then(function () { window.location.reload(); }).catch(function (x) { window.alert(x.message); });
    });
  });

  document.querySelectorAll('select.user-change').forEach(function (s) {
    s.addEventListener('change', function () {
      var change = s.value, id = s.closest('tr').dataset.user, value = '';
      s.value = '';
      if (!change) return;
      if (change === 'role') value = window.prompt('New role for ' + id + ' (operator, supervisor, qa, admin)');
      if (change === 'name') value = window.prompt('New printed name for ' + id);
      if (change === 'password') value = window.prompt('New password for ' + id + ' (at least 12 characters)');
      if ((change === 'role' || change === 'name' || change === 'password') && !value) return;
      var reason = window.prompt('Reason for this change (recorded in the audit trail)');
      if (!reason) return;
      post('/api/v1/users/' + encodeURIComponent(id), {change: change, value: value, reason: reason})
        .then(function () { window.location.reload(); }).catch(function (x) { window.alert(x.message); });
    });
  });
})();
