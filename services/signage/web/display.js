// Call display for waiting-area TVs. State comes from the office feed:
// `status` snapshots (waiting counts, estimates, what each counter is
// doing) and `call` / `change` events in log order. Each call is shown the
// moment it arrives and queued for announcement; announcements never
// overlap (chime, then Japanese and English speech where the browser has
// voices, or a fixed reading time) and never fall behind by more than a
// bound (`announce_within_seconds` of the office's signage.toml, default
// 20 s): a call whose announcement has not started within it of reaching
// the page is shown but not spoken, a recall of a number still waiting to
// be announced replaces it, and the banner drops an announcement that
// reaches the bound.
'use strict';

const scope = pageScope();
const office = decodeURIComponent(scope.rest[1]);
const RECENT = 8;
const SPEAK_FALLBACK_MS = 6000;
const CHIME_MS = 1200;
let announceWithinMs = 20000;

const calling = new Map();   // counter number -> call view
const recent = [];           // newest first
let lastSequence = 0;

function renderCalling() {
  const box = document.getElementById('calling');
  box.replaceChildren();
  if (calling.size === 0) {
    box.append(el('div', { class: 'empty' }, '呼び出し中の番号はありません / No numbers being called'));
    return;
  }
  const calls = [...calling.values()].sort((a, b) => b.sequence - a.sequence);
  for (const c of calls) {
    box.append(el('div', {
      class: 'call' + (c.fresh ? ' fresh' : ''),
      style: `--c:${c.category_colour || '#888'};--k:${c.counter_colour || '#333'}`,
      'data-number': c.number,
    },
      el('span', { class: 'number' }, c.number),
      el('span', { class: 'to' },
        el('span', { class: 'counter' }, c.counter, el('small', {}, ' 番窓口')),
        el('div', { class: 'en' }, `Counter ${c.counter}`)),
    ));
    c.fresh = false;
  }
}

function renderRecent() {
  const box = document.getElementById('recent');
  box.replaceChildren(...recent.map((c) =>
    el('span', { class: 'r', style: `--c:${c.category_colour || '#888'}` }, `${c.number} → ${c.counter}`)));
}

function renderStatus(status) {
  document.getElementById('office').textContent = `${status.office_ja}  ${status.office_en}`;
  const rows = status.categories.map((c) => el('tr', {},
    el('td', {}, el('span', { class: 'chip', style: `--c:${c.colour}` }, c.prefix),
      c.name_ja, el('span', { class: 'name-en' }, c.name_en)),
    el('td', { class: 'waiting' }, c.waiting, el('small', {}, ' 人')),
    el('td', {}, c.waiting === 0 ? '—' : waitText(c.wait_min, c.wait_max, 'ja'),
      el('span', { class: 'name-en' }, c.waiting === 0 ? 'no wait' : waitText(c.wait_min, c.wait_max, 'en')))));
  document.getElementById('queues').replaceChildren(...rows);
  // A snapshot older than the newest event shown (the server reads
  // snapshots while events keep flowing) would take back a call already on
  // the board: keep the board, the next snapshot brings it up to date.
  if (status.last_sequence < lastSequence) return;
  // The snapshot is the truth for what counters are calling now; keep the
  // calls we already show with their colours, drop the ones it no longer has.
  const shown = new Map(calling);
  calling.clear();
  for (const k of status.counters) {
    if (!k.number || !k.calling) continue;
    const known = shown.get(k.counter);
    calling.set(k.counter, known && known.number === k.number ? known : {
      sequence: 0, number: k.number, counter: k.counter,
      counter_colour: k.colour, category_colour: k.colour,
    });
  }
  renderCalling();
}

function onCall(call) {
  if (call.sequence <= lastSequence) return; // never show an event twice
  lastSequence = call.sequence;
  call.fresh = true;
  calling.set(call.counter, call);
  recent.unshift(call);
  recent.length = Math.min(recent.length, RECENT);
  renderCalling();
  renderRecent();
  announce(call);
}

function onChange(change) {
  if (change.sequence <= lastSequence) return;
  lastSequence = change.sequence;
  if (change.kind === 'issued') return;
  for (const [counter, c] of calling) {
    if (c.number === change.number) calling.delete(counter);
  }
  renderCalling();
}

// ---- announcements: one at a time, in arrival order, within a bound

// Time as the announcements see it. Tests replace these three to drive
// the queue with a clock of their own instead of waiting for real time.
let timing = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms))),
  speak: (text, lang) => speak(text, lang),
};

const announcements = [];   // waiting to start, oldest first; each {call, arrived}
let speaking = false;
let current = null;         // the announcement on the banner
let skipped = 0;            // calls shown but not spoken (too late)
let audio = null;

function chime() {
  try {
    audio = audio || new AudioContext();
    const t = audio.currentTime;
    [[880, 0], [659, 0.45]].forEach(([freq, at]) => {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.0001, t + at);
      gain.gain.exponentialRampToValueAtTime(0.3, t + at + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t + at + 0.8);
      osc.connect(gain).connect(audio.destination);
      osc.start(t + at);
      osc.stop(t + at + 0.85);
    });
  } catch (e) { /* no audio output: the text is still shown */ }
}

function speak(text, lang) {
  return new Promise((resolve) => {
    const voices = window.speechSynthesis ? speechSynthesis.getVoices() : [];
    const voice = voices.find((v) => v.lang && v.lang.startsWith(lang));
    if (!voice) { timing.sleep(SPEAK_FALLBACK_MS / 2).then(resolve); return; }
    const u = new SpeechSynthesisUtterance(text);
    u.voice = voice; u.lang = voice.lang;
    u.onend = resolve; u.onerror = resolve;
    speechSynthesis.speak(u);
  });
}

function announce(call) {
  const entry = { call, arrived: timing.now() };
  // A recall of a number still waiting: one announcement, in the earlier
  // one's place, saying what the recall says, timed from the recall.
  const waiting = announcements.findIndex((a) => a.call.number === call.number);
  if (waiting >= 0) announcements[waiting] = entry;
  else announcements.push(entry);
  if (speaking) return;
  speaking = true;
  // In a task of its own: the number is on the board (and painted) first,
  // the chime and speech setup come after.
  setTimeout(nextAnnouncement, 0);
}

async function nextAnnouncement() {
  const box = document.getElementById('announcement');
  let next = announcements.shift();
  // Too late to start: it stays on the board, unspoken.
  while (next && timing.now() - next.arrived >= announceWithinMs) {
    skipped += 1;
    next = announcements.shift();
  }
  current = next || null;
  if (!next) { speaking = false; box.replaceChildren(); return; }
  speaking = true;
  const { call } = next;
  box.replaceChildren(el('div', {}, call.announcement_ja), el('div', { class: 'en' }, call.announcement_en));
  // The banner never shows an announcement older than the bound: whichever
  // comes first, the end of the speech or the bound, ends it.
  let expired = false;
  const deadline = timing.sleep(next.arrived + announceWithinMs - timing.now())
    .then(() => { expired = true; });
  const spoken = (async () => {
    chime();
    await timing.sleep(CHIME_MS);
    if (!expired) await timing.speak(call.announcement_ja, 'ja');
    if (!expired) await timing.speak(call.announcement_en, 'en');
  })();
  await Promise.race([spoken, deadline]);
  if (expired && window.speechSynthesis) speechSynthesis.cancel();
  nextAnnouncement();
}

// ---- clock and ticker
function tick() {
  const now = new Date();
  document.getElementById('clock').textContent =
    now.toLocaleTimeString('ja-JP', { hour: '2-digit', minute: '2-digit' });
}
setInterval(tick, 1000);
tick();

fetch(`${scope.base}/api/offices/${encodeURIComponent(office)}/guide?lang=ja`)
  .then((r) => (r.ok ? r.json() : null))
  .then((g) => {
    if (!g) return;
    if (g.display && g.display.announce_within_seconds > 0) {
      announceWithinMs = g.display.announce_within_seconds * 1000;
    }
    const items = [
      ...g.notices.map((n) => el('span', { class: 'slot notice' }, el('span', { class: 'label' }, 'お知らせ'), n.text)),
      ...g.ads.map((a) => el('span', { class: 'slot ad' }, el('span', { class: 'label' }, `広告 ${a.sponsor}`), a.text)),
    ];
    document.getElementById('ticker').replaceChildren(...items);
  })
  .catch(() => {});

follow(`${scope.base}/api/offices/${encodeURIComponent(office)}/feed`, {
  // A snapshot never moves lastSequence: after a reconnect it may already
  // include calls whose events are still to come, and those must be shown
  // and announced when they arrive.
  status: renderStatus,
  // The server's log no longer has this page's resume point (its database
  // was replaced): start over from the snapshot.
  reset: (status) => {
    calling.clear();
    recent.length = 0;
    lastSequence = 0;
    renderRecent();
    renderStatus(status);
  },
  call: onCall,
  change: onChange,
});
