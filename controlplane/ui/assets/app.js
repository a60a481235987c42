// shoal dashboard: polls /ui/api/mesh (management API responses in
// protojson) every second and renders topology, services, routes and
// proxies. No dependencies.
'use strict';

const $ = (id) => document.getElementById(id);
const num = (v) => Number(v || 0); // protojson writes 64-bit integers as strings
const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
const pct = (x) => (x * 100).toFixed(x >= 0.9995 || x === 0 ? 0 : 1) + '%';
const rateClass = (r) => (r >= 0.99 ? 'ok' : r >= 0.95 ? 'warn' : 'bad');
const strategyName = (s) => String(s || 'STRATEGY_ROUND_ROBIN').replace('STRATEGY_', '').toLowerCase().replace('unspecified', 'round_robin');
const shortType = (t) => String(t).split('.').pop();

function ago(ts) {
  if (!ts) return '—';
  const s = (Date.now() - Date.parse(ts)) / 1000;
  if (s < 60) return Math.max(0, Math.round(s)) + ' s ago';
  if (s < 3600) return Math.round(s / 60) + ' min ago';
  return Math.round(s / 3600) + ' h ago';
}

function healthBadge(h) {
  const v = String(h || 'HEALTH_STATUS_UNSPECIFIED').replace('HEALTH_STATUS_', '').toLowerCase();
  const label = v === 'unspecified' ? 'registered' : v;
  const cls = { healthy: 'ok', registered: 'ok', draining: 'warn', suspect: 'warn', unhealthy: 'bad' }[label] || 'warn';
  return `<span class="badge ${cls}" data-health="${esc(label)}">${esc(label)}</span>`;
}

function renderHeader(m) {
  const st = m.status || {};
  $('cp').innerHTML = `control plane <code>${esc(st.controlPlaneId || '?')}</code> · ${esc(st.controlPlaneVersion || '')} · ` +
    (st.ready ? '<span class="ok">ready</span>' : '<span class="warn">syncing</span>');
  $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
}

function renderTopology(m) {
  const edges = (m.traffic && m.traffic.edges) || [];
  const names = new Set(((m.services && m.services.services) || []).map((s) => s.name));
  edges.forEach((e) => { names.add(e.source); names.add(e.destination); });
  const nodes = [...names].sort();
  const svg = $('topology');
  const W = 900, H = 320, cx = W / 2, cy = H / 2, r = Math.min(W, H) / 2 - 45;
  const pos = {};
  nodes.forEach((n, i) => {
    const a = (2 * Math.PI * i) / Math.max(1, nodes.length) - Math.PI / 2;
    pos[n] = nodes.length === 1 ? [cx, cy] : [cx + r * 1.6 * Math.cos(a), cy + r * Math.sin(a)];
  });
  let out = '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">' +
    '<path d="M 0 0 L 10 5 L 0 10 z" fill="#8b9bab"/></marker></defs>';
  const colors = { ok: '#3fb950', warn: '#d29922', bad: '#f85149' };
  for (const e of edges) {
    const [x1, y1] = pos[e.source], [x2, y2] = pos[e.destination];
    if (e.source === e.destination) continue;
    const dx = x2 - x1, dy = y2 - y1, d = Math.hypot(dx, dy) || 1, k = 30 / d;
    const sx = x1 + dx * k, sy = y1 + dy * k, tx = x2 - dx * k, ty = y2 - dy * k;
    const col = colors[rateClass(e.successRate)];
    out += `<g class="edge-g" data-source="${esc(e.source)}" data-destination="${esc(e.destination)}">` +
      `<line class="edge" x1="${sx}" y1="${sy}" x2="${tx}" y2="${ty}" stroke="${col}" marker-end="url(#arrow)"/>` +
      `<text class="edge-label" x="${(sx + tx) / 2}" y="${(sy + ty) / 2 - 6}" text-anchor="middle">` +
      `${e.requestsPerSecond.toFixed(1)} rps · ${pct(e.successRate)}</text></g>`;
  }
  for (const n of nodes) {
    const [x, y] = pos[n];
    out += `<g class="node" data-service="${esc(n)}"><circle cx="${x}" cy="${y}" r="26"/>` +
      `<text x="${x}" y="${y + 4}" text-anchor="middle">${esc(n)}</text></g>`;
  }
  svg.innerHTML = out;
  $('edges').innerHTML = edges.length === 0
    ? '<p class="muted">No traffic reported in the last minute.</p>'
    : '<table><tr><th>source</th><th>destination</th><th>rps</th><th>success</th><th>mean latency</th><th>in flight</th><th>requests (1 min)</th></tr>' +
      edges.map((e) => `<tr class="edge-row" data-source="${esc(e.source)}" data-destination="${esc(e.destination)}">` +
        `<td>${esc(e.source)}</td><td>${esc(e.destination)}</td><td class="rps">${e.requestsPerSecond.toFixed(1)}</td>` +
        `<td class="${rateClass(e.successRate)}">${pct(e.successRate)}</td>` +
        `<td>${e.meanLatencyMs ? e.meanLatencyMs.toFixed(1) + ' ms' : '—'}</td><td>${num(e.inProgress)}</td><td>${num(e.requests)}</td></tr>`).join('') +
      '</table>';
}

function renderServices(m) {
  const services = (m.services && m.services.services) || [];
  const instances = (m.instances && m.instances.instances) || [];
  const traffic = (m.traffic && m.traffic.endpoints) || [];
  // Requests per service, strategy and address, summed over sources.
  const byStrategy = {};
  for (const t of traffic) {
    const s = (byStrategy[t.service] ||= {});
    const st = (s[t.strategy] ||= { total: 0, by: {} });
    st.total += num(t.requests);
    st.by[t.address] = (st.by[t.address] || 0) + num(t.requests);
  }
  $('services').innerHTML = services.length === 0 ? '<p class="muted">No services registered.</p>' : services.map((svc) => {
    const insts = instances.filter((i) => i.service === svc.name);
    const strategies = Object.keys(byStrategy[svc.name] || {}).sort();
    const head = '<tr><th>instance</th><th>address</th><th>health</th><th>zone</th><th>metadata</th>' +
      strategies.map((s) => `<th>share · ${esc(s)}</th>`).join('') + '</tr>';
    const rows = insts.map((i) => {
      const addr = `${i.address}:${i.port}`;
      const shares = strategies.map((s) => {
        const st = byStrategy[svc.name][s];
        const share = st.total ? (st.by[addr] || 0) / st.total : 0;
        return `<td><div class="bar" data-strategy="${esc(s)}" data-share="${share.toFixed(4)}"><span style="width:${(share * 100).toFixed(1)}%"></span><em>${pct(share)} · ${st.by[addr] || 0}</em></div></td>`;
      }).join('');
      const md = Object.entries(i.metadata || {}).map(([k, v]) => `${esc(k)}=${esc(v)}`).join(' ');
      return `<tr class="instance" data-instance="${esc(i.id)}"><td><code>${esc(i.id)}</code></td><td>${esc(addr)}</td>` +
        `<td>${healthBadge(i.health)}</td><td>${esc(i.zone)}</td><td class="muted">${md}</td>${shares}</tr>`;
    }).join('');
    return `<div class="service" data-service="${esc(svc.name)}"><h3>${esc(svc.name)} ` +
      `<span class="muted small">${num(svc.healthyInstances)}/${num(svc.instances)} healthy</span></h3>` +
      `<table>${head}${rows}</table></div>`;
  }).join('');
}

function describeRule(r) {
  const m = r.match || {};
  const path = m.prefix !== undefined ? `prefix ${m.prefix}` : m.exact !== undefined ? `exact ${m.exact}` : m.regex !== undefined ? `regex ${m.regex}` : 'any path';
  const dests = (r.destinations || []).map((d) => {
    const sub = Object.entries(d.subset || {}).map(([k, v]) => `${k}=${v}`).join(',');
    return esc(d.service) + (sub ? `[${esc(sub)}]` : '') + (d.weight ? ` ${d.weight}%` : '');
  }).join(', ');
  const hk = r.hashKey ? ' on ' + esc(r.hashKey.header ? 'header ' + r.hashKey.header : r.hashKey.cookie ? 'cookie ' + r.hashKey.cookie : 'source IP') : '';
  return `${esc(path)} → ${dests} <span class="badge">${esc(strategyName(r.strategy))}${hk}</span>`;
}

function renderRoutes(m) {
  const routes = (m.routes && m.routes.routes) || [];
  const status = {};
  ((m.status && m.status.routes) || []).forEach((r) => { status[r.name] = r; });
  $('routes').innerHTML = routes.length === 0 ? '<p class="muted">No routes: every service is reachable by its name with round robin.</p>' :
    '<table><tr><th>route</th><th>hosts</th><th>rules</th></tr>' + routes.map((r) => {
      const st = status[r.name];
      const bad = st && !st.accepted ? ` <span class="badge bad" title="${esc(st.error)}">not served</span>` : '';
      return `<tr class="route" data-route="${esc(r.name)}"><td><code>${esc(r.name)}</code>${bad}</td><td>${(r.hosts || []).map(esc).join(', ')}</td>` +
        `<td>${(r.rules || []).map(describeRule).join('<br>')}</td></tr>`;
    }).join('') + '</table>';
}

function renderProxies(m) {
  const clients = (m.status && m.status.clients) || [];
  $('proxies').innerHTML = clients.length === 0 ? '<p class="muted">No proxy connected.</p>' :
    '<table><tr><th>node</th><th>stream</th><th>acked</th><th>last ACK</th><th>NACK</th></tr>' + clients.map((c) => {
      const res = c.resources || [];
      const acked = res.map((r) => {
        const v = r.ackedVersion || (r.resumedResources ? `resumed(${r.resumedResources})` : '—');
        const cls = r.ackedVersion && r.ackedVersion === r.sentVersion ? 'ok' : r.nackedVersion ? 'bad' : 'muted';
        return `<span class="${cls}" title="${esc(r.typeUrl)}">${esc(shortType(r.typeUrl))} ${esc(String(v).slice(0, 10))}</span>`;
      }).join('<br>');
      const last = res.map((r) => r.lastAckTime).filter(Boolean).sort().pop();
      const nacks = res.filter((r) => r.nackError).map((r) => `<span class="bad">${esc(shortType(r.typeUrl))}: ${esc(r.nackError)}</span>`).join('<br>');
      return `<tr class="proxy" data-node="${esc(c.nodeId)}"><td><code>${esc(c.nodeId)}</code><br><span class="muted small">${esc(c.nodeCluster)} · ${esc(c.userAgent)}</span></td>` +
        `<td>${c.delta ? 'delta' : 'SotW'}</td><td class="small">${acked}</td><td>${ago(last)}</td><td class="small">${nacks || '<span class="ok">none</span>'}</td></tr>`;
    }).join('') + '</table>';
}

async function refresh() {
  try {
    const resp = await fetch('api/mesh', { cache: 'no-store' });
    if (!resp.ok) throw new Error(await resp.text());
    const m = await resp.json();
    renderHeader(m);
    renderTopology(m);
    renderServices(m);
    renderRoutes(m);
    renderProxies(m);
    document.body.dataset.loaded = 'true';
  } catch (err) {
    $('cp').innerHTML = `<span class="bad">control plane unreachable: ${esc(err.message)}</span>`;
  } finally {
    setTimeout(refresh, 1000);
  }
}
refresh();
