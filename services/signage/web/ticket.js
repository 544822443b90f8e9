// Ticket status page on the resident's phone: people ahead, the wait as a
// range, and the counter once called, live from the ticket feed. Shows no
// personal data: the queue has none, only the anonymous number.
'use strict';

const scope = pageScope(); // rest: ['t', office, ticket, token]
const feedUrl = `${scope.base}/api/t/${scope.rest[1]}/${scope.rest[2]}/${scope.rest[3]}/feed`;
// Japanese first, as on the printed ticket; one tap switches to English.
let lang = 'ja';
let view = null;

const MESSAGES = {
  waiting: { ja: 'お待ちください。', en: 'Please wait.' },
  serving: { ja: '窓口で手続き中です。', en: 'You are being served.' },
  done: { ja: '手続きは終わりました。ありがとうございました。', en: 'Your visit is complete. Thank you.' },
  'no-show': { ja: '呼び出しに応答がなかったため、受付を終了しました。窓口にお声がけください。', en: 'You were called but did not come. Please ask at a counter.' },
  cancelled: { ja: 'この番号は取り消されました。', en: 'This number was cancelled.' },
};

function render() {
  for (const node of document.querySelectorAll('[data-ja]')) node.textContent = node.dataset[lang];
  document.documentElement.lang = lang;
  document.getElementById('lang').textContent = lang === 'ja' ? 'English' : '日本語';
  if (!view) return;
  const card = document.getElementById('card');
  card.style.setProperty('--c', view.colour || '#888');
  document.getElementById('number').textContent = view.number;
  document.getElementById('category').textContent = lang === 'ja' ? view.category_ja : view.category_en;
  document.getElementById('ahead').textContent =
    view.people_ahead === null ? '–' : (lang === 'ja' ? `${view.people_ahead} 人` : `${view.people_ahead}`);
  document.getElementById('wait').textContent =
    view.wait_min === null ? '–' : waitText(view.wait_min, view.wait_max, lang);
  const called = document.getElementById('called');
  called.style.setProperty('--k', view.counter_colour || '#333');
  called.textContent = lang === 'ja'
    ? `${view.counter} 番窓口へお越しください（${view.floor}階）`
    : `Please go to counter ${view.counter} (floor ${view.floor})`;
  const message = MESSAGES[view.state];
  document.getElementById('message').textContent = message ? message[lang] : '';
  const offline = document.body.classList.contains('offline');
  document.body.className = `state-${view.state}` + (['done', 'no-show', 'cancelled'].includes(view.state) ? ' final' : '');
  document.body.classList.toggle('offline', offline);
}

document.getElementById('lang').addEventListener('click', () => {
  lang = lang === 'ja' ? 'en' : 'ja';
  render();
});

const feed = follow(feedUrl, {
  ticket: (t) => {
    view = t;
    render();
    if (['done', 'no-show', 'cancelled'].includes(t.state)) feed.stop();
  },
});
render();
