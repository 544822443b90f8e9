// Shared helpers of the signage pages: a live feed over server-sent events
// that shows an offline banner while disconnected and reconnects by itself
// from the last event it handled, and small DOM helpers. No dependencies.
'use strict';

/**
 * Where the page sits: `base` is `/signage/municipalities/{code}` (or
 * `/signage` for the first municipality a server serves), the prefix of
 * the page's own endpoints; `rest` holds the path's segments after it,
 * e.g. ['offices', 'main', 'display'] or ['t', office, ticket, token].
 */
function pageScope() {
  const match = location.pathname.match(/^(\/signage(?:\/municipalities\/[0-9]{6})?)\/(.*)$/);
  return { base: match[1], rest: match[2].split('/') };
}

/** Creates an element with attributes and children. */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    // Through the CSSOM: the Content-Security-Policy (style-src 'self')
    // blocks a style attribute set as markup, not element.style.
    if (key === 'style') node.style.cssText = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/**
 * Follows an SSE feed. `handlers` maps event names to functions of the
 * parsed data and the event. The browser resends Last-Event-ID when it
 * reconnects by itself; if it gives up (readyState CLOSED) a new source is
 * opened with `?after=` the last id seen, so resume never depends on the
 * browser. The body gets the `offline` class while disconnected.
 */
function follow(url, handlers, options) {
  const opts = options || {};
  let lastId = null;
  let source = null;
  let stopped = false;
  const setOnline = (online) => document.body.classList.toggle('offline', !online);
  const open = () => {
    if (stopped) return;
    const full = lastId === null ? url : url + (url.includes('?') ? '&' : '?') + 'after=' + lastId;
    source = new EventSource(full);
    source.onopen = () => setOnline(true);
    source.onerror = () => {
      setOnline(false);
      if (source.readyState === EventSource.CLOSED) {
        setTimeout(open, opts.retryMs || 1000);
      }
    };
    for (const [name, handle] of Object.entries(handlers)) {
      source.addEventListener(name, (event) => {
        setOnline(true);
        if (event.lastEventId) lastId = event.lastEventId;
        handle(JSON.parse(event.data), event);
      });
    }
  };
  open();
  return {
    stop() { stopped = true; if (source) source.close(); },
  };
}

/** "約 5〜10 分" / "about 5–10 min" for a wait range. */
function waitText(min, max, lang) {
  if (lang === 'en') return min === max ? `about ${min} min` : `about ${min}–${max} min`;
  return min === max ? `約 ${min} 分` : `約 ${min}〜${max} 分`;
}
