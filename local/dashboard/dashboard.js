// The local stack's dashboard: renders each snapshot the stack pushes on /api/stream (server-sent events).
// Every value from the stack goes into the page as text (textContent), never as markup: payloads come from devices.
'use strict';

const $ = (id) => document.getElementById(id);
const seenReadings = new Set();
let firstRender = true;

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function row(cells, className) {
  const tr = el('tr', undefined, className);
  for (const cell of cells) tr.appendChild(cell instanceof Node ? cell : el('td', cell));
  return tr;
}

function fill(sectionId, rows, emptyText) {
  const tbody = document.querySelector(`#${sectionId} tbody`);
  const columns = document.querySelectorAll(`#${sectionId} thead th`).length;
  tbody.replaceChildren();
  if (rows.length === 0) {
    const td = el('td', emptyText, 'empty');
    td.colSpan = columns;
    tbody.appendChild(row([td]));
    return;
  }
  for (const r of rows) tbody.appendChild(r);
}

function td(text, className) {
  return el('td', text, className);
}

function clock(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  return d.toLocaleTimeString(undefined, { hour12: false }) + '.' + String(d.getMilliseconds()).padStart(3, '0');
}

function ago(iso, now) {
  if (!iso) return 'never';
  const s = Math.max(0, Math.round((Date.parse(now) - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return `${Math.floor(s / 3600)} h ago`;
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function outcomeClass(outcome) {
  return outcome === 'succeeded' ? 'ok' : outcome === 'partial' ? 'warn' : 'bad';
}

function statusClass(status) {
  return status < 300 ? 'ok' : status < 500 ? 'warn' : 'bad';
}

function renderQueues(q) {
  $('relay-waiting').textContent = q.relay.waiting;
  $('relay-inflight').textContent = q.relay.inFlight;
  $('dlq-depth').textContent = q.deadLetter.waiting + q.deadLetter.inFlight;
  $('relay-name').textContent = q.relay.name;
  $('dlq-name').textContent = q.deadLetter.name;
  renderChart(q.history);
}

function renderChart(history) {
  const svg = $('chart');
  const ns = 'http://www.w3.org/2000/svg';
  svg.replaceChildren();
  const width = 600;
  const height = 150;
  const pad = 6;
  const max = Math.max(1, ...history.map((h) => Math.max(h.relay, h.relayInFlight, h.deadLetter)));
  const grid = document.createElementNS(ns, 'line');
  for (const [attr, value] of Object.entries({ x1: 0, x2: width, y1: height - pad, y2: height - pad, stroke: '#e5e7eb' })) grid.setAttribute(attr, value);
  svg.appendChild(grid);
  const label = document.createElementNS(ns, 'text');
  label.setAttribute('x', 4);
  label.setAttribute('y', 14);
  label.setAttribute('font-size', 11);
  label.setAttribute('fill', '#6b7280');
  label.textContent = `max ${max}`;
  svg.appendChild(label);
  if (history.length < 2) return;
  const t0 = history[0].t;
  const span = Math.max(1, history[history.length - 1].t - t0);
  const x = (t) => ((t - t0) / span) * width;
  const y = (v) => height - pad - (v / max) * (height - 2 * pad - 14);
  for (const [key, color] of [['relay', '#2563eb'], ['relayInFlight', '#b45309'], ['deadLetter', '#b91c1c']]) {
    const line = document.createElementNS(ns, 'polyline');
    line.setAttribute('fill', 'none');
    line.setAttribute('stroke', color);
    line.setAttribute('stroke-width', '2');
    line.setAttribute('vector-effect', 'non-scaling-stroke');
    line.setAttribute('points', history.map((h) => `${x(h.t).toFixed(1)},${y(h[key]).toFixed(1)}`).join(' '));
    svg.appendChild(line);
  }
  $('chart-range').textContent = `last ${Math.round(span / 1000)} s`;
}

function lastSession(last, now) {
  if (!last) return td('none yet', 'muted');
  if (last.summary) return td(`${ago(last.at, now)}: ${last.summary.text}, ${last.durationMs} ms`, last.summary.tone);
  return td(`${ago(last.at, now)}: ${plural(last.records, 'record')}, ${last.outcome}, ${last.durationMs} ms`, outcomeClass(last.outcome));
}

function renderGateways(s) {
  fill(
    'gateways',
    s.gateways.map((g) =>
      row([
        td(g.id, 'mono'),
        td(g.connected ? 'live' : 'idle', g.connected ? 'ok' : 'muted'),
        td(g.attached.length > 0 ? g.attached.join(', ') : '–', 'mono'),
        td(g.sessions),
        lastSession(g.lastSession, s.now),
      ]),
    ),
    'no gateway in the registry',
  );
}

function renderDevices(s) {
  $('devices-total').textContent =
    s.deviceCount > s.devices.length ? `${s.devices.length} of ${s.deviceCount}: attached and most recently heard first` : `${s.deviceCount}`;
  fill(
    'devices',
    s.devices.map((d) =>
      row([
        td(d.id, 'mono'),
        td(d.gateways.join(', ') || '–', 'mono'),
        td(d.attachedTo.length > 0 ? d.attachedTo.join(', ') : 'no', d.attachedTo.length > 0 ? 'ok' : 'muted'),
        td(ago(d.lastEventTime, s.now), d.lastEventTime ? '' : 'muted'),
        td(`v${d.bridgeConfigVersion} / ${d.storeConfigVersion === undefined ? 'not polled yet' : `v${d.storeConfigVersion}`}`,
          d.storeConfigVersion === undefined ? 'muted' : ''),
      ]),
    ),
    'no device in the registry',
  );
}

function renderReadings(s) {
  $('readings-total').textContent = `${s.readings.total} received`;
  fill(
    'readings',
    s.readings.recent.map((r) => {
      const fresh = !firstRender && !seenReadings.has(r.id);
      seenReadings.add(r.id);
      const tr = row(
        [td(clock(r.time), 'mono'), td(r.deviceId, 'mono'), td(r.subFolder || '–', 'mono'), td(r.gatewayId || 'direct', 'mono'), td(r.bytes), td(r.preview, 'mono payload')],
        fresh ? 'fresh' : '',
      );
      tr.dataset.readingId = r.id;
      return tr;
    }),
    'nothing yet: post a reading (see the terminal for a curl line)',
  );
}

function renderErrors(s) {
  $('errors-total').textContent = `${s.errors.total} sent`;
  fill(
    'errors',
    s.errors.recent.map((e) =>
      row([td(clock(e.time), 'mono'), td(e.gatewayId, 'mono'), td(e.errorType, 'bad mono'), td(e.deviceId, 'mono'), td(e.delivered ? e.description : `${e.description} (not subscribed)`)]),
    ),
    'no error sent to a gateway',
  );
}

function batchOutcome(b) {
  // The relay's own account: confirmed, retried, dead-lettered, with codes. Without it, what the queue did.
  if (b.summary) return td(b.summary.text.replace(/^\d+ records?[:,] /, ''), b.summary.tone);
  return td(b.outcome === 'succeeded' ? `${b.deleted} deleted` : `${b.deleted} deleted, ${b.retried} back (${b.outcome})`, outcomeClass(b.outcome));
}

function renderBatches(s) {
  fill(
    'batches',
    s.batches.map((b) => row([td(clock(b.at), 'mono'), td(b.groups.join(', ') || '–', 'mono'), td(b.records), batchOutcome(b), td(b.durationMs)])),
    'no batch yet',
  );
}

function renderDeadLetters(s) {
  const d = s.deadLetters;
  if (!d) {
    $('dead-letters').hidden = true;
    return;
  }
  const shown = d.items.length < d.total ? `, the first ${d.items.length} shown` : '';
  $('dead-letters-total').textContent = d.error ? `cannot read the queue: ${d.error}` : `${d.total} in the queue${shown}`;
  $('replay').disabled = d.replay.running || d.total === 0;
  if (d.replay.running) $('replay-result').textContent = 'replaying…';
  else if (d.replay.last) $('replay-result').textContent = `${clock(d.replay.last.at)}: ${d.replay.last.text}`;
  fill(
    'dead-letters',
    d.items.map((x) => {
      const devices = x.deviceId || (x.deviceIds && x.deviceIds.join(', ')) || '–';
      const code = td(x.code || 'redrive', 'bad mono');
      if (x.permanent) code.appendChild(el('span', ' (would fail again)', 'muted'));
      const tr = row([td(ago(x.at, s.now).replace(' ago', ''), 'mono'), td(devices, 'mono'), code, td(x.reason, 'reason')]);
      tr.dataset.messageId = x.messageId;
      return tr;
    }),
    'none: every record was relayed or is still being retried',
  );
}

function renderHttp(s) {
  const sim = s.simulator;
  $('simulator').textContent = sim ? `simulator: ${sim.devices} devices, ${sim.sent} posts, ${sim.accepted} accepted, ${sim.refused} refused` : '';
  fill(
    'http',
    s.http.map((h) => row([td(clock(h.at), 'mono'), td(`${h.method} ${h.path}`, 'mono'), td(h.status, statusClass(h.status)), td(h.durationMs)])),
    'no request yet',
  );
}

function renderLorawan(s) {
  const section = $('lorawan');
  if (!s.lorawan) {
    section.hidden = true;
    return;
  }
  section.hidden = false;
  $('lorawan-total').textContent = `${s.lorawan.downlinks.length} recorded at the network-server stand-in`;
  fill(
    'lorawan-devices',
    s.lorawan.devices.map((d) =>
      row([
        td(d.deviceId, 'mono'),
        td(d.storeConfigVersion === undefined ? 'not polled yet' : `v${d.storeConfigVersion}`, d.storeConfigVersion === undefined ? 'muted' : ''),
        td(d.delivered ? `v${d.delivered.version} via ${d.delivered.via}, ${ago(d.delivered.at, s.now)}` : 'none yet', d.delivered ? 'ok' : 'muted'),
        td(d.refused ? `v${d.refused.version}: ${d.refused.reason}` : '–', d.refused ? 'bad' : 'muted'),
      ]),
    ),
    'no LoRaWAN device',
  );
  fill(
    'lorawan-downlinks',
    s.lorawan.downlinks.map((d) =>
      row([
        td(clock(d.at), 'mono'),
        td(d.networkServer === 'tts' ? 'The Things Stack' : 'ChirpStack'),
        td(d.deviceId || d.devEui, 'mono'),
        td(d.operation),
        td(d.fPort),
        td(d.data, 'mono payload'),
      ]),
    ),
    'no downlink yet: change a device config, poll, then post an uplink',
  );
}

function render(s) {
  renderQueues(s.queues);
  renderGateways(s);
  renderDevices(s);
  renderReadings(s);
  renderErrors(s);
  renderBatches(s);
  renderDeadLetters(s);
  renderHttp(s);
  renderLorawan(s);
  $('uptime').textContent = `up ${ago(s.startedAt, s.now).replace(' ago', '')}`;
  firstRender = false;
}

function connect() {
  const stream = new EventSource('/api/stream');
  stream.addEventListener('open', () => {
    $('link').textContent = 'live';
    $('link').className = 'live';
  });
  stream.addEventListener('error', () => {
    $('link').textContent = 'reconnecting…';
    $('link').className = '';
  });
  stream.addEventListener('state', (e) => render(JSON.parse(e.data)));
}

$('poll').addEventListener('click', () => {
  fetch('/api/poll', { method: 'POST' }).catch(() => undefined);
});

$('replay').addEventListener('click', () => {
  $('replay').disabled = true;
  $('replay-result').textContent = 'replaying…';
  fetch('/api/dead-letters/replay', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
    .then((res) => res.json().then((body) => {
      $('replay-result').textContent = res.ok ? body.summary : body.message;
    }))
    .catch((e) => {
      $('replay-result').textContent = `replay failed: ${e.message}`;
    });
});

connect();
