// Floor guide for the touch panel: search by purpose (目的) in kanji, kana
// or romaji, in five languages; each answer shows the counter, floor and
// colour on a floor map drawn from the site's data, with the documents to
// bring. Notices and sponsored ads fill the slots at the bottom.
'use strict';

const scope = pageScope();
const office = decodeURIComponent(scope.rest[1]);
const api = `${scope.base}/api/offices/${encodeURIComponent(office)}`;
const LANGS = [['ja', '日本語'], ['en', 'English'], ['zh', '中文'], ['ko', '한국어'], ['ja-easy', 'やさしいにほんご']];
const UI = {
  ja: { title: '庁舎案内 — 目的からさがす', placeholder: '例：住民票がほしい・ひっこし・juminhyo', go: '検索', none: '見つかりませんでした。総合案内にお尋ねください。', counter: '番窓口', floor: '階', bring: '持ち物', map: 'フロアマップ', notice: 'お知らせ', ad: '広告' },
  en: { title: 'Floor guide — search by what you need', placeholder: 'e.g. residence certificate, moving', go: 'Search', none: 'Nothing found. Please ask at the information desk.', counter: 'Counter', floor: 'F', bring: 'Bring', map: 'Floor map', notice: 'Notice', ad: 'Sponsored' },
  zh: { title: '楼层指南 — 按目的查找', placeholder: '例：住民票、搬家', go: '搜索', none: '未找到。请到综合咨询处询问。', counter: '号窗口', floor: '楼', bring: '所需材料', map: '楼层图', notice: '通知', ad: '广告' },
  ko: { title: '청사 안내 — 목적으로 찾기', placeholder: '예: 주민표, 이사', go: '검색', none: '찾지 못했습니다. 종합 안내에 문의하세요.', counter: '번 창구', floor: '층', bring: '준비물', map: '층 안내도', notice: '알림', ad: '광고' },
  'ja-easy': { title: 'しやくしょ の あんない', placeholder: 'れい：じゅうみんひょう', go: 'さがす', none: 'みつかりません。あんない の ひと に きいて ください。', counter: 'ばん まどぐち', floor: 'かい', bring: 'もって くる もの', map: 'ちず', notice: 'おしらせ', ad: 'こうこく' },
};
const QUICK = {
  ja: ['住民票がほしい', '引っ越しした', '家族が亡くなった', '子どもが生まれた', '国民健康保険', '児童手当'],
  en: ['Residence certificate', 'Moving', 'Death in the family', 'Baby', 'Health insurance', 'Child allowance'],
  zh: ['住民票', '搬家', '家人去世了', '孩子出生了', '国民健康保险', '儿童补贴'],
  ko: ['주민표', '이사', '사망', '출생', '건강보험', '아동수당'],
  'ja-easy': ['じゅうみんひょう', 'ひっこし', 'なくなった', 'あかちゃん', 'こくほ', 'じどうてあて'],
};

let lang = 'ja';
let guide = null;
let matches = [];
let selected = null;
let searchSeq = 0;

const t = (key) => UI[lang][key];
const counterLabel = (n) => (lang === 'en' ? `${t('counter')} ${n}` : `${n} ${t('counter')}`);

function renderChrome() {
  document.documentElement.lang = lang === 'ja-easy' ? 'ja' : lang;
  document.getElementById('title').textContent = t('title');
  document.getElementById('q').placeholder = t('placeholder');
  document.getElementById('go').textContent = t('go');
  document.getElementById('langs').replaceChildren(...LANGS.map(([code, name]) =>
    el('button', { type: 'button', 'aria-pressed': String(code === lang), onclick: () => setLang(code) }, name)));
  document.getElementById('quick').replaceChildren(...QUICK[lang].map((q) =>
    el('button', { type: 'button', onclick: () => { document.getElementById('q').value = q; search(q); } }, q)));
}

function renderResults() {
  const box = document.getElementById('results');
  const query = document.getElementById('q').value.trim();
  if (query && matches.length === 0) {
    box.replaceChildren(el('div', { id: 'none', style: 'display:block' }, t('none')));
  } else {
    box.replaceChildren(...matches.map((m) => el('article', {
      class: 'result' + (selected === m.id ? ' selected' : ''),
      style: `--c:${m.colour}`,
      'data-purpose': m.id,
      onclick: () => { selected = m.id; renderResults(); renderMap(); },
    },
      el('h3', {}, m.title),
      el('div', { class: 'where' },
        el('span', { class: 'chip' }, counterLabel(m.counter)),
        el('span', {}, `${m.floor}${t('floor')}`),
        el('span', { class: 'chip', style: `--c:${m.colour}` }, m.prefix),
        el('span', {}, m.category_name)),
      el('div', {}, m.description),
      el('div', { class: 'muted-dark' }, el('strong', {}, t('bring'))),
      el('ul', {}, m.documents.map((d) => el('li', {}, d))))));
  }
}

// The map: areas are SVG shapes scaled to the panel; their labels are HTML
// boxes laid over them at the same place and size, so a long name
// (エレベーター, "Ticket machine", 번호표 발급기) wraps inside its area
// instead of running out of it as an SVG <text> would. Label sizes are in
// cqw (hundredths of the map's width), like the shapes.
function renderMap() {
  const box = document.getElementById('map');
  if (!guide || guide.floors.length === 0) { box.replaceChildren(); return; }
  const target = matches.find((m) => m.id === selected) || null;
  const floor = guide.floors.find((f) => target && f.number === target.floor) || guide.floors[0];
  const NS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', `0 0 ${floor.width} ${floor.height}`);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-hidden', 'true');
  const add = (tag, attrs) => {
    const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    svg.append(n);
    return n;
  };
  const labels = [];
  const label = (a, cls, text) => {
    const pct = (v, of) => `${(v / of) * 100}%`;
    labels.push(el('div', {
      class: `label ${cls}`,
      style: `left:${pct(a.x, floor.width)};top:${pct(a.y, floor.height)};` +
        `width:${pct(a.w, floor.width)};height:${pct(a.h, floor.height)}`,
    }, text));
  };
  add('rect', { x: 0, y: 0, width: floor.width, height: floor.height, fill: '#24324a', rx: 1.5 });
  const counters = new Map(guide.counters.map((c) => [c.id, c]));
  for (const a of floor.areas) {
    if (a.kind === 'counter') {
      const c = counters.get(a.counter);
      const isTarget = target && c && target.counter === c.number;
      add('rect', { x: a.x, y: a.y, width: a.w, height: a.h, rx: 1, fill: c ? c.colour : '#888',
        'fill-opacity': target && !isTarget ? 0.35 : 1, stroke: isTarget ? '#ffd34d' : 'none',
        'stroke-width': isTarget ? 1.6 : 0, class: isTarget ? 'target' : '', 'data-counter': a.counter });
      label(a, 'counter', c ? c.number : a.counter);
    } else {
      add('rect', { x: a.x, y: a.y, width: a.w, height: a.h, rx: 1, fill: '#3a4a66' });
      label(a, a.kind, a.label || '');
    }
  }
  // The plan's units are the map's: 100 wide means 1 unit = 1cqw.
  const plan = el('div', {
    class: 'plan',
    style: `aspect-ratio:${floor.width}/${floor.height};--unit:${100 / floor.width}cqw`,
  }, svg, ...labels);
  box.replaceChildren(el('h3', {}, `${t('map')} — ${floor.name}`), plan);
}

function renderSlots() {
  if (!guide) return;
  document.getElementById('slots').replaceChildren(
    ...guide.notices.map((n) => el('div', { class: 'slot notice' }, el('span', { class: 'label' }, t('notice')), n.text)),
    ...guide.ads.map((a) => el('div', { class: 'slot ad', 'data-ad': a.id },
      el('span', { class: 'label' }, `${t('ad')} · ${a.sponsor}`), a.text)));
}

async function loadGuide() {
  const r = await fetch(`${api}/guide?lang=${encodeURIComponent(lang)}`);
  guide = r.ok ? await r.json() : null;
  renderSlots();
  renderMap();
}

async function search(query) {
  const seq = ++searchSeq;
  if (!query.trim()) { matches = []; selected = null; renderResults(); renderMap(); return; }
  const r = await fetch(`${api}/guide/search?lang=${encodeURIComponent(lang)}&q=${encodeURIComponent(query)}`);
  if (seq !== searchSeq) return; // a newer search was started meanwhile
  matches = r.ok ? (await r.json()).matches : [];
  selected = matches.length ? matches[0].id : null;
  renderResults();
  renderMap();
}

function setLang(code) {
  lang = code;
  renderChrome();
  loadGuide();
  search(document.getElementById('q').value);
}

let debounce = null;
document.getElementById('q').addEventListener('input', (e) => {
  clearTimeout(debounce);
  debounce = setTimeout(() => search(e.target.value), 150);
});
document.getElementById('search').addEventListener('submit', (e) => {
  e.preventDefault();
  search(document.getElementById('q').value);
});

renderChrome();
loadGuide();
