// The nodemesh page: one overview streamed over SSE (/ui/api/events), drawn as an SVG graph grouped
// by namespace and node; details fetched on a click. Plain ES module, no build step, no libraries.
const $ = (sel) => document.querySelector(sel);
const esc = (s) =>
  String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

const state = { model: undefined, selected: undefined, lastDetailAt: 0, detailTimer: undefined, rendered: 0 };
window.nodemesh = state; // for tests and the curious: the last overview and what is selected

// ---- data ---------------------------------------------------------------------------------------
function connect() {
  const es = new EventSource('/ui/api/events');
  es.addEventListener('overview', (ev) => {
    state.model = JSON.parse(ev.data);
    $('#status').textContent = `live · revision ${state.model.revision} · ${new Date(state.model.time).toLocaleTimeString()}`;
    $('#status').className = 'status live';
    render();
    if (state.selected) refreshDetailSoon();
  });
  es.onerror = () => {
    $('#status').textContent = 'disconnected, retrying…';
    $('#status').className = 'status';
  };
}

async function getJson(path) {
  const res = await fetch(path, { credentials: 'same-origin' });
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${await res.text()}`);
  return res.json();
}

// ---- layout -------------------------------------------------------------------------------------
const BOX_GAP = 16;
function layout(m) {
  const labelled = m.workloads.length <= 150;
  const cellW = labelled ? 150 : 14;
  const cellH = labelled ? 20 : 14;
  const pos = new Map();
  const boxes = [];
  const byNs = new Map(m.namespaces.map((n) => [n.name, { ns: n, workloads: [], services: [], waypoints: [] }]));
  const group = (ns) => {
    if (!byNs.has(ns)) byNs.set(ns, { ns: { name: ns, enrolled: false }, workloads: [], services: [], waypoints: [] });
    return byNs.get(ns);
  };
  for (const w of m.workloads) group(w.namespace).workloads.push(w);
  for (const s of m.services) group(s.namespace).services.push(s);
  for (const w of m.waypoints) group(w.namespace).waypoints.push(w);
  // Endpoints the store does not name (outside the mesh, unknown workloads): one box of their own.
  const known = new Set([...m.workloads.map((w) => w.id), ...m.services.map((s) => s.id), ...m.waypoints.map((w) => w.id)]);
  const outside = [...new Set(m.edges.flatMap((e) => [e.source, e.destination]).filter((id) => !known.has(id)))].sort();
  const maxWidth = Math.max(900, (document.querySelector('#graph-wrap')?.clientWidth ?? 1200) - 20);
  let x = 10;
  let y = 10;
  let rowH = 0;
  const groups = [...byNs.values()].filter((g) => g.workloads.length + g.services.length + g.waypoints.length > 0);
  if (outside.length) groups.push({ ns: { name: 'outside the mesh / unknown', enrolled: false }, workloads: [], services: [], waypoints: [], outside });
  for (const g of groups) {
    const nodes = new Map();
    for (const w of g.workloads) {
      if (!nodes.has(w.node)) nodes.set(w.node, []);
      nodes.get(w.node).push(w);
    }
    const cols = labelled ? 2 : Math.max(8, Math.min(24, Math.ceil(Math.sqrt(g.workloads.length * 2))));
    const nodeBoxW = cols * cellW + 12;
    const top = [...g.services, ...g.waypoints, ...(g.outside ?? []).map((id) => ({ id, name: id }))];
    const topPer = Math.max(1, Math.floor((Math.max(nodeBoxW, 260) - 12) / 130));
    const topRows = Math.ceil(top.length / topPer);
    const nodeBoxes = [...nodes.entries()].sort(([a], [b]) => a.localeCompare(b));
    const perRow = Math.max(1, Math.min(nodeBoxes.length, Math.floor((maxWidth - 20) / (nodeBoxW + 8))));
    const boxW = Math.max(260, perRow * (nodeBoxW + 8) + 8, topPer * 130 + 12);
    let inner = 24 + topRows * 26;
    const nodeRects = [];
    let rowMax = 0;
    nodeBoxes.forEach(([node, wls], i) => {
      const col = i % perRow;
      if (col === 0 && i > 0) {
        inner += rowMax + 8;
        rowMax = 0;
      }
      const h = 18 + Math.ceil(wls.length / cols) * cellH + 6;
      rowMax = Math.max(rowMax, h);
      nodeRects.push({ node, wls, dx: 8 + col * (nodeBoxW + 8), dy: inner, w: nodeBoxW, h });
    });
    inner += rowMax + 8;
    const boxH = inner;
    if (x + boxW > maxWidth && x > 10) {
      x = 10;
      y += rowH + BOX_GAP;
      rowH = 0;
    }
    boxes.push({ kind: 'ns', x, y, w: boxW, h: boxH, title: g.ns.name + (g.ns.enrolled ? ' · ambient' : ''), enrolled: g.ns.enrolled });
    top.forEach((t, i) => {
      const px = x + 8 + (i % topPer) * 130;
      const py = y + 24 + Math.floor(i / topPer) * 26;
      const kind = t.id.startsWith('svc:') ? 'svc' : t.id.startsWith('wp:') ? 'wp' : 'ext';
      pos.set(t.id, { x: px + 60, y: py + 9, kind, label: kind === 'ext' ? t.id.replace(/^(addr|wl):/, '') : t.name, rx: px, ry: py });
    });
    for (const r of nodeRects) {
      boxes.push({ kind: 'node', x: x + r.dx, y: y + r.dy, w: r.w, h: r.h, title: r.node });
      r.wls.forEach((w, i) => {
        const cx = x + r.dx + 10 + (i % cols) * cellW;
        const cy = y + r.dy + 22 + Math.floor(i / cols) * cellH;
        pos.set(w.id, { x: cx, y: cy, kind: 'wl', label: labelled ? w.name : undefined, enrolled: w.enrolled, title: `${w.namespace}/${w.name} on ${w.node}` });
      });
    }
    x += boxW + BOX_GAP;
    rowH = Math.max(rowH, boxH);
  }
  return { pos, boxes, width: maxWidth, height: y + rowH + 20 };
}

// ---- drawing ------------------------------------------------------------------------------------
function edgeClass(e) {
  const c = ['edge'];
  if (e.deniedState === 'all') c.push('denied-all');
  else if (e.deniedState === 'some') c.push('denied-some');
  else if (e.waypoints.length) c.push('via-wp');
  if (e.mtlsRatio < 0.5 && e.deniedState === 'none') c.push('plain');
  return c.join(' ');
}

function fmtRate(r) {
  return r >= 10 ? r.toFixed(0) : r >= 0.1 ? r.toFixed(1) : r > 0 ? r.toFixed(2) : '0';
}

function edgeTitle(e) {
  const unit = e.reporter === 'waypoint' ? 'req' : 'conn';
  return `${e.source} → ${e.destination}
${e.reporter === 'waypoint' ? e.requests : e.connections} ${unit} (${fmtRate(e.rate)}/s), denied ${e.denied}, errors ${e.errors}
mTLS ${Math.round(e.mtlsRatio * 100)} %, bytes ${e.bytesIn}/${e.bytesOut}${e.waypoints.length ? `\nvia waypoint ${e.waypoints.join(', ')}` : ''}`;
}

function render() {
  const m = state.model;
  if (!m) return;
  const t0 = performance.now();
  renderPolicies(m);
  const route = location.hash || '#/graph';
  for (const v of ['graph', 'workloads', 'workload', 'control']) $(`#view-${v}`).hidden = true;
  for (const a of document.querySelectorAll('header nav a')) a.classList.toggle('active', route.startsWith(a.getAttribute('href')));
  if (route.startsWith('#/workloads')) return renderWorkloads(m);
  if (route.startsWith('#/workload/')) return renderWorkloadPage(decodeURIComponent(route.slice('#/workload/'.length)));
  if (route.startsWith('#/control')) return renderControl(m);
  $('#view-graph').hidden = false;
  const L = layout(m);
  const parts = [];
  for (const b of L.boxes) {
    parts.push(`<rect class="${b.kind}-box" x="${b.x}" y="${b.y}" width="${b.w}" height="${b.h}" rx="6"/>`);
    parts.push(`<text class="${b.kind}-title" x="${b.x + 8}" y="${b.y + (b.kind === 'ns' ? 15 : 12)}">${esc(b.title)}</text>`);
  }
  const sel = state.selected?.id;
  const pairs = new Map();
  for (const e of m.edges) {
    const a = L.pos.get(e.source);
    const b = L.pos.get(e.destination);
    if (!a || !b) continue;
    // Several edges between the same two ends (as reported by different proxies): bend each apart.
    const pair = `${e.source} ${e.destination}`;
    const k = pairs.get(pair) ?? 0;
    pairs.set(pair, k + 1);
    const bend = 0.15 + 0.12 * k;
    const wp = k === 0 ? e.waypoints.map((w) => L.pos.get(`wp:${w}`)).find(Boolean) : undefined;
    const self = a === b ? 30 : 0;
    const cx = wp ? wp.x : (a.x + b.x) / 2 + (b.y - a.y) * bend + self;
    const cy = wp ? wp.y : (a.y + b.y) / 2 - (b.x - a.x) * bend - self;
    const d = `M${a.x},${a.y} Q${cx},${cy} ${b.x},${b.y}`;
    const width = Math.min(6, 1.5 + Math.log10(1 + e.rate) * 2);
    parts.push(
      `<g data-edge="${esc(e.id)}" data-denied="${e.deniedState}"><path class="edge-hit" d="${d}"/><path class="${edgeClass(e)}${sel === e.id ? ' selected' : ''}" d="${d}" style="stroke-width:${width}" marker-end="url(#arrow)"><title>${esc(edgeTitle(e))}</title></path></g>`,
    );
  }
  for (const [id, p] of L.pos) {
    const s = sel === id ? ' selected' : '';
    if (p.kind === 'wl') {
      parts.push(`<circle class="wl${p.enrolled ? '' : ' plain'}${s}" data-id="${esc(id)}" cx="${p.x}" cy="${p.y}" r="5"><title>${esc(p.title)}</title></circle>`);
      if (p.label) parts.push(`<text x="${p.x + 9}" y="${p.y + 3}">${esc(p.label)}</text>`);
    } else if (p.kind === 'wp') {
      parts.push(
        `<path class="wp${s}" data-id="${esc(id)}" d="M${p.x},${p.y - 9} L${p.x + 12},${p.y} L${p.x},${p.y + 9} L${p.x - 12},${p.y} Z"><title>waypoint ${esc(id.slice(3))}</title></path><text x="${p.x + 15}" y="${p.y + 3}">${esc(p.label)}</text>`,
      );
    } else {
      parts.push(`<rect class="${p.kind}${s}" data-id="${esc(id)}" x="${p.rx}" y="${p.ry}" width="120" height="18" rx="${p.kind === 'svc' ? 9 : 2}"><title>${esc(id)}</title></rect>`);
      parts.push(`<text x="${p.rx + 8}" y="${p.ry + 12}">${esc(p.label.length > 20 ? `${p.label.slice(0, 19)}…` : p.label)}</text>`);
    }
  }
  const svg = $('#graph');
  svg.setAttribute('width', L.width);
  svg.setAttribute('height', L.height);
  svg.innerHTML = `<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#5a6678"/></marker></defs>${parts.join('')}`;
  const denied = m.edges.filter((e) => e.deniedState !== 'none').length;
  $('#summary').textContent = `${m.workloads.length} workloads · ${m.services.length} services · ${m.edges.length} edges (${denied} with denials) · proxies read ${m.observer.read}${m.observer.failing ? `, ${m.observer.failing} not answering` : ''}`;
  state.rendered++;
  state.renderMs = performance.now() - t0;
}

function renderPolicies(m) {
  $('#policies').innerHTML = m.policies
    .map(
      (p) =>
        `<li data-policy="${esc(`${p.namespace}/${p.name}`)}"><span class="tag ${p.action === 'DENY' ? 'deny' : p.action === 'ALLOW' ? 'allow' : ''}">${esc(p.action ?? p.mode)}</span>${esc(p.namespace)}/${esc(p.name)} <small>${p.kind === 'PeerAuthentication' ? 'PeerAuthentication' : ''}</small></li>`,
    )
    .join('');
}

function renderWorkloads(m) {
  const v = $('#view-workloads');
  v.hidden = false;
  const rows = m.workloads
    .map(
      (w) =>
        `<tr><td><a href="#/workload/${esc(w.id)}">${esc(w.namespace)}/${esc(w.name)}</a></td><td>${esc(w.node)}</td><td>${esc(w.serviceAccount)}</td><td>${esc(w.address)}</td><td>${w.enrolled ? '<span class="tag ok">captured</span>' : '<span class="tag">not enrolled</span>'}</td></tr>`,
    )
    .join('');
  v.innerHTML = `<h2>Workloads (${m.workloads.length})</h2><table><tr><th>workload</th><th>node</th><th>service account</th><th>address</th><th>enrolment</th></tr>${rows}</table>`;
}

function policyList(ps) {
  if (!ps?.length) return '<p>none select it (no ALLOW policy: anything not denied is allowed)</p>';
  return `<ul>${ps
    .map(
      (p) =>
        `<li data-policy="${esc(`${p.namespace}/${p.name}`)}"><span class="tag ${p.action === 'DENY' ? 'deny' : p.action === 'ALLOW' ? 'allow' : ''}">${esc(p.action ?? p.mode)}</span>${esc(p.kind)} ${esc(p.namespace)}/${esc(p.name)} <small>(${esc(p.scope)})</small></li>`,
    )
    .join('')}</ul>`;
}

function recordTable(rs) {
  if (!rs?.length) return '<p>no recent records (the proxies keep their last 512)</p>';
  const rows = rs
    .slice(-20)
    .reverse()
    .map((r) => {
      const what = r.method ? `${r.method} → ${r.status}` : `${r.response_flags}${r.error ? ` ${r.error}` : ''}`;
      const why = r.policy ? `${r.policy}: ${r.deny_reason ?? ''}` : r.detail ?? '';
      const denied = r.response_flags === 'DENY' || r.status === 403;
      return `<tr><td>${new Date(r.time).toLocaleTimeString()}</td><td>${esc(r.proxy)}</td><td>${esc(r.src?.workload ?? r.src?.identity ?? '?')}</td><td>${esc(r.dst?.workload ?? r.dst?.service ?? '?')}:${esc(r.dst?.port ?? '')}</td><td>${denied ? '<span class="tag denied">denied</span>' : ''}${esc(what)}</td><td>${esc(why)}</td></tr>`;
    })
    .join('');
  return `<table><tr><th>time</th><th>proxy</th><th>from</th><th>to</th><th>outcome</th><th>why</th></tr>${rows}</table>`;
}

function explainBlock(x) {
  if (!x) return '';
  if (!x.available) return `<p><span class="tag warn">explain</span>${esc(x.note)}</p>`;
  const a = x.answer ?? {};
  const verdict = a.verdict?.line;
  const notes = (a.notes ?? []).map((n) => `<li>${esc(n)}</li>`).join('');
  return `<p class="verdict ${a.verdict?.allowed ? 'allowed' : 'refused'}" id="explain-verdict">${esc(verdict ?? 'see below')}</p>${notes ? `<ul>${notes}</ul>` : ''}<details><summary>explain ${esc(new URLSearchParams(x.query).toString())}</summary><pre>${esc(JSON.stringify(a, null, 2))}</pre></details>`;
}

async function showDetail() {
  const s = state.selected;
  if (!s) return;
  state.lastDetailAt = Date.now();
  const body = $('#panel-body');
  if ($('#panel').hidden) {
    $('#panel').hidden = false;
    render(); // the graph makes room for the panel
  }
  try {
    if (s.type === 'edge') {
      const d = await getJson(`/ui/api/edge?id=${encodeURIComponent(s.id)}`);
      const e = d.edge;
      const denyPolicies = d.denyingPolicies.length
        ? `<p id="denied-by"><span class="tag denied">denied by</span>${d.denyingPolicies.map(esc).join(', ')}</p>`
        : e?.denied
          ? '<p id="denied-by"><span class="tag denied">denied</span>(no recent record names the policy)</p>'
          : '';
      body.innerHTML = `<h2>${esc(d.source)} → ${esc(d.destination)}</h2>
        ${e ? `<p>${e.reporter === 'waypoint' ? `${e.requests} requests` : `${e.connections} connections`} · ${fmtRate(e.rate)}/s · denied ${e.denied} · errors ${e.errors} · mTLS ${Math.round(e.mtlsRatio * 100)} % · bytes ${e.bytesIn} in / ${e.bytesOut} out${e.waypoints.length ? ` · via waypoint ${e.waypoints.map(esc).join(', ')}` : ''} <small>(reported by ${esc(e.reporter)})</small></p>` : ''}
        ${denyPolicies}
        <h2>Identities</h2><p>${esc(d.identities.source ?? '?')} → ${esc(d.identities.destination ?? '?')}</p>
        <h2>Policies that apply</h2>${policyList(d.policies)}
        <h2>Explain</h2>${explainBlock(d.explain)}
        <h2>Recent access records</h2>${recordTable(d.records)}`;
    } else {
      const d = await getJson(`/ui/api/node?id=${encodeURIComponent(s.id)}`);
      if (d.workload) {
        const w = d.workload;
        body.innerHTML = `<h2>${esc(w.namespace)}/${esc(w.name)}</h2>
          <p><a href="#/workload/${esc(s.id)}">workload page</a></p>
          <p>identity <code>${esc(w.identity)}</code><br>node ${esc(w.node)} · ${esc(w.addresses.join(', '))} · ${w.enrolled ? '<span class="tag ok">captured</span>' : '<span class="tag">not enrolled</span>'}</p>
          <h2>Policies that apply</h2>${policyList(d.policies)}
          <h2>Recent access records</h2>${recordTable(d.records)}`;
      } else if (d.service) {
        body.innerHTML = `<h2>Service ${esc(d.service.namespace)}/${esc(d.service.name)}</h2><p>VIP ${esc(d.service.spec.clusterIP ?? '-')} · ports ${esc(d.service.spec.ports.map((p) => p.port).join(', '))}</p><h2>Policies that apply</h2>${policyList(d.policies)}`;
      } else if (d.waypoint) {
        body.innerHTML = `<h2>Waypoint ${esc(d.waypoint.namespace)}/${esc(d.waypoint.name)}</h2><h2>Proxies</h2>${proxyTable(d.proxies)}`;
      } else body.innerHTML = `<h2>${esc(s.id)}</h2><p>not a resource the control plane knows (outside the mesh, or gone)</p>${recordTable(d.records)}`;
    }
  } catch (err) {
    body.innerHTML = `<p>${esc(err.message)}</p>`;
  }
}

function refreshDetailSoon() {
  if (state.detailTimer) return;
  const wait = Math.max(0, state.lastDetailAt + 2000 - Date.now());
  state.detailTimer = setTimeout(() => {
    state.detailTimer = undefined;
    showDetail();
  }, wait);
}

function proxyTable(ps) {
  if (!ps?.length) return '<p>no proxy connected</p>';
  const types = [...new Set(ps.flatMap((p) => Object.keys(p.types)))].sort();
  const short = (t) => t.replace(/^type\.googleapis\.com\//, '');
  const rows = ps
    .map(
      (p) =>
        `<tr data-proxy="${esc(p.nodeId)}"><td>${esc(p.nodeId)}</td><td>${esc(p.api)}</td><td>${esc(p.view)}</td><td>${esc(p.peer)}</td>${types
          .map((t) => {
            const v = p.types[t] ?? '-';
            return `<td><span class="tag ${v === 'SYNCED' || v.startsWith('SENT') ? 'ok' : v === 'NACKED' ? 'denied' : 'warn'}">${esc(v)}</span></td>`;
          })
          .join('')}<td>${p.nacks.map((n) => esc(`${n.type}: ${n.message}`)).join('<br>')}</td></tr>`,
    )
    .join('');
  return `<table><tr><th>proxy</th><th>API</th><th>view</th><th>peer</th>${types.map((t) => `<th>${esc(short(t))}</th>`).join('')}<th>NACKs</th></tr>${rows}</table>`;
}

function renderControl(m) {
  const v = $('#view-control');
  v.hidden = false;
  v.innerHTML = `<h2>Proxies connected (${m.proxies.length})</h2><p>What each proxy was last sent and whether it acknowledged it (the data behind <code>nodemesh proxy-status</code>).</p>${proxyTable(m.proxies)}
    <h2>Observer</h2><p>reads every node proxy and waypoint on 15020 each ${m.observer.intervalMs / 1000} s: ${m.observer.read} answered, ${m.observer.failing} not answering${m.observer.skipped ? `, ${m.observer.skipped} skipped (over the limit)` : ''}; store revision ${m.revision}</p>`;
}

function certText(c) {
  if (!c.notAfter) return esc(c.note);
  const h = Math.floor(Math.abs(c.expiresInSeconds) / 3600);
  const m = Math.floor((Math.abs(c.expiresInSeconds) % 3600) / 60);
  const when = c.expired ? `<span class="tag denied">expired ${h} h ${m} min ago</span>` : `<span class="tag ok">expires in ${h} h ${m} min</span>`;
  return `${when} serial ${esc(c.serialNumber)}, valid ${esc(c.notBefore)} – ${esc(c.notAfter)}, issued ${esc(c.issuedAt)} to node ${esc(c.node)}`;
}

async function renderWorkloadPage(id) {
  const v = $('#view-workload');
  v.hidden = false;
  if (v.dataset.id === id && Date.now() - Number(v.dataset.at) < 2000) return;
  v.dataset.id = id;
  v.dataset.at = String(Date.now());
  try {
    const d = await getJson(`/ui/api/node?id=${encodeURIComponent(id)}`);
    if (!d.workload) {
      v.innerHTML = `<h2>${esc(id)}</h2><p>no such workload</p>`;
      return;
    }
    const w = d.workload;
    const c = d.capture;
    v.innerHTML = `<h2>Workload ${esc(w.namespace)}/${esc(w.name)}</h2>
      <table>
      <tr><th>identity</th><td><code>${esc(w.identity)}</code></td></tr>
      <tr><th>certificate</th><td id="certificate">${certText(d.certificate)}</td></tr>
      <tr><th>enrolment</th><td>${w.enrolled ? '<span class="tag ok">ambient: captured by its node proxy</span>' : '<span class="tag">not enrolled (dataplane-mode is not ambient on it or its namespace)</span>'}</td></tr>
      <tr><th>node</th><td>${esc(w.node)}</td></tr>
      <tr><th>capture on its node</th><td>${c.connected ? `<span class="tag ok">node proxy ${esc(c.nodeProxy)} connected</span> from ${esc(c.peer)}; config: ${Object.entries(c.types).map(([t, s]) => `${esc(t.replace(/^type\.googleapis\.com\//, ''))} ${esc(s)}`).join(', ')}${c.nacks.length ? ` <span class="tag denied">NACK</span> ${c.nacks.map((n) => esc(n.message)).join('; ')}` : ''}` : `<span class="tag warn">no node proxy of ${esc(c.nodeProxy)} is connected: nothing captures it</span>`}</td></tr>
      <tr><th>addresses</th><td>${esc(w.addresses.join(', '))}</td></tr>
      <tr><th>ports</th><td>${esc(w.ports.map((p) => p.port).join(', ') || '-')}</td></tr>
      <tr><th>labels</th><td>${Object.entries(w.labels).map(([k, val]) => `<span class="tag">${esc(k)}=${esc(val)}</span>`).join('')}</td></tr>
      </table>
      <h2>Policies that apply</h2>${policyList(d.policies)}
      <h2>Recent access records</h2>${recordTable(d.records)}`;
  } catch (err) {
    v.innerHTML = `<p>${esc(err.message)}</p>`;
  }
}

// ---- events -------------------------------------------------------------------------------------
$('#graph').addEventListener('click', (ev) => {
  const edge = ev.target.closest('[data-edge]');
  const node = ev.target.closest('[data-id]');
  if (node) state.selected = { type: 'node', id: node.dataset.id };
  else if (edge) state.selected = { type: 'edge', id: edge.dataset.edge };
  else return;
  render();
  showDetail();
});
$('#panel-close').addEventListener('click', () => {
  state.selected = undefined;
  $('#panel').hidden = true;
  render();
});
window.addEventListener('hashchange', render);
window.addEventListener('resize', () => render());
connect();
