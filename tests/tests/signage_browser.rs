//! The signage pages in a real headless Chromium (Debian's, through
//! chromedriver), on SQLite and PostgreSQL: calls reach the TV display and
//! the time from the call to the text appearing is measured; a display
//! whose server stops shows the offline banner and, once the server is
//! back, shows the calls it missed exactly once; the ticket status page
//! follows the tickets ahead; the floor guide finds the counter from a
//! kana query. Screenshots are written to `target/tmp/signage-screenshots`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod signage_support;

use std::time::{SystemTime, UNIX_EPOCH};

use madoguchi_e2e::{Backend, OFFICE, on_both_backends};
use madoguchi_platform::auth::Role;
use madoguchi_proto::signage::v1 as spb;
use signage_support::*;

on_both_backends!(
    display_shows_each_call_and_measures_call_to_text_latency,
    display_shows_offline_banner_and_catches_up_on_missed_calls_once,
    status_page_follows_the_tickets_ahead,
    floor_guide_finds_the_counter_by_kana,
);

/// Calls measured per run; the p99 of 100 samples is the 99th value.
const MEASURED_CALLS: usize = 100;

fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

fn epoch_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

/// Installs an observer that records, per number, the wall-clock time
/// (ms since the epoch, the same clock as the test's) at which a
/// "now calling" card with that number first appears in the document, and
/// the time the next frame starts (`requestAnimationFrame`: the frame that
/// draws it).
const RECORD_APPEARANCES: &str = r#"
    window.__appeared = window.__appeared || {};
    window.__framed = window.__framed || {};
    const now = () => performance.timeOrigin + performance.now();
    const record = () => {
      for (const card of document.querySelectorAll('#calling .call[data-number]')) {
        const n = card.dataset.number;
        if (!(n in window.__appeared)) {
          window.__appeared[n] = now();
          requestAnimationFrame(() => { window.__framed[n] = now(); });
        }
      }
    };
    record();
    new MutationObserver(record).observe(document.getElementById('calling'), { childList: true, subtree: true });
    return true;
"#;

/// Resolves with the recorded appearance and frame times of `number`,
/// waiting for them.
const APPEARANCE_OF: &str = r#"
    const [number, done] = arguments;
    const framed = () => requestAnimationFrame(() => requestAnimationFrame(() =>
      done([window.__appeared[number], window.__framed[number]])));
    if (number in window.__appeared) return framed();
    const obs = new MutationObserver(() => {
      if (number in window.__appeared) { obs.disconnect(); framed(); }
    });
    obs.observe(document.getElementById('calling'), { childList: true, subtree: true });
"#;

async fn display_shows_each_call_and_measures_call_to_text_latency(backend: Backend) {
    let floor = spawn_all(backend).await;
    let mut staff = floor.queue(Role::Staff).await;
    let page = chromium(1920, 1080).await;
    page.browser
        .goto(&format!("{}/signage/offices/main/display", floor.base()))
        .await
        .unwrap();
    page.wait_for_text("#office", "大船渡市役所").await;
    page.browser
        .execute(RECORD_APPEARANCES, vec![])
        .await
        .unwrap();

    // Warm-up call (first paint of a card, first queries), not measured.
    let mut previous = None;
    let mut latencies = Vec::with_capacity(MEASURED_CALLS);
    let mut to_frame = Vec::with_capacity(MEASURED_CALLS);
    for round in 0..=MEASURED_CALLS {
        if let Some(ticket) = previous.take() {
            serve_and_finish(&mut staff, &ticket).await;
        }
        issue_ticket(&mut staff, "certificates").await;
        let sent = epoch_ms();
        let called = call_next(&mut staff, "1").await;
        let times = page
            .wait_in_page(APPEARANCE_OF, vec![shown(&called).into()])
            .await;
        let appeared = times[0].as_f64().unwrap();
        let framed = times[1].as_f64().unwrap();
        if round > 0 {
            latencies.push(appeared - sent);
            to_frame.push(framed - sent);
        }
        previous = Some(called);
    }
    // The card shows the number, the counter and the colours of the site.
    let card = page
        .browser
        .execute(
            "const c = document.querySelector('#calling .call'); \
             return [c.dataset.number, c.querySelector('.counter').textContent, getComputedStyle(c).borderLeftColor];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(card[0], shown(previous.as_ref().unwrap()));
    assert!(card[1].as_str().unwrap().starts_with('1'), "{card}");
    assert_eq!(card[2], "rgb(232, 131, 58)", "certificates orange #E8833A");
    // The announcement of the newest call is queued, never lost; the text
    // is Japanese and English.
    page.wait_for_text("#announcement", "番窓口へお越しください")
        .await;
    page.screenshot(&format!("display-1920x1080-{}", backend_name(backend)))
        .await;

    latencies.sort_by(f64::total_cmp);
    to_frame.sort_by(f64::total_cmp);
    println!(
        "call → text on the display ({}, headless Chromium, {} calls): p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        backend_name(backend),
        latencies.len(),
        percentile(&latencies, 50.0),
        percentile(&latencies, 90.0),
        percentile(&latencies, 99.0),
        percentile(&latencies, 100.0),
    );
    println!(
        "call → frame that draws it ({}, requestAnimationFrame after the text is in the page): p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        backend_name(backend),
        percentile(&to_frame, 50.0),
        percentile(&to_frame, 90.0),
        percentile(&to_frame, 99.0),
        percentile(&to_frame, 100.0),
    );
    assert_eq!(latencies.len(), MEASURED_CALLS, "every call appeared");
    page.close().await;
    floor.stop().await;
}

async fn display_shows_offline_banner_and_catches_up_on_missed_calls_once(backend: Backend) {
    // The queue in one process, the signage pages in another (the cluster
    // shape), so the signage server can stop while calls go on.
    let queue = spawn_all(backend).await;
    let signage = spawn_signage(&queue, "127.0.0.1:0".parse().unwrap()).await;
    let mut staff = queue.queue(Role::Staff).await;
    let page = chromium(1920, 1080).await;
    page.browser
        .goto(&format!("{}/signage/offices/main/display", signage.base()))
        .await
        .unwrap();
    page.wait_for_text("#office", "大船渡市役所").await;

    let mut called = Vec::new();
    for _ in 0..5 {
        issue_ticket(&mut staff, "certificates").await;
    }
    called.push(call_next(&mut staff, "1").await);
    page.wait_for_text("#recent", &shown(&called[0])).await;
    page.wait_for_body_class("offline", false).await;

    // The signage server goes away: the banner shows.
    let addr = signage.stop().await;
    page.wait_for_body_class("offline", true).await;
    let banner_visible = page
        .browser
        .execute(
            "return getComputedStyle(document.querySelector('.offline-banner')).display !== 'none';",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(banner_visible, true);
    page.screenshot(&format!("display-offline-{}", backend_name(backend)))
        .await;

    // Calls made while it is away.
    for counter in ["1", "2", "4"] {
        if counter == "1" {
            serve_and_finish(&mut staff, &called[0]).await;
        }
        if counter == "4" {
            // Counter 4 serves insurance; give it somebody.
            issue_ticket(&mut staff, "insurance-pension").await;
        }
        called.push(call_next(&mut staff, counter).await);
    }
    let newest = last_sequence(&mut staff).await;

    // Back on the same address: the display reconnects by itself and shows
    // each missed call once, in order.
    let signage = spawn_signage(&queue, addr).await;
    page.wait_for_body_class("offline", false).await;
    let last = shown(called.last().unwrap());
    page.wait_for_text("#recent", &last).await;
    let state = page
        .browser
        .execute(
            "return [recent.map((c) => c.number), lastSequence, announcements.length + (speaking ? 1 : 0)];",
            vec![],
        )
        .await
        .unwrap();
    let recent: Vec<String> = state[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = called.iter().rev().map(shown).collect();
    assert_eq!(recent, expected, "every call once, newest first");
    assert_eq!(state[1].as_u64(), Some(newest), "caught up to the log");
    assert!(
        state[2].as_u64().unwrap() >= 1,
        "missed calls are announced"
    );
    // The now-calling board matches the queue: counters 1, 2 and 4.
    for call in &called[1..] {
        page.wait_for_text("#calling .call", &shown(call)).await;
    }
    page.screenshot(&format!("display-caught-up-{}", backend_name(backend)))
        .await;
    page.close().await;
    signage.stop().await;
    queue.stop().await;
}

async fn status_page_follows_the_tickets_ahead(backend: Backend) {
    let floor = spawn_all(backend).await;
    let mut staff = floor.queue(Role::Staff).await;
    let mut device = floor.signage(Role::Device, "032034").await;
    let mut tickets = Vec::new();
    for _ in 0..3 {
        tickets.push(issue_ticket(&mut staff, "certificates").await);
    }
    let mine = tickets[2].clone();
    let url = device
        .get_ticket_status_url(spb::GetTicketStatusUrlRequest {
            ticket: mine.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();

    // A phone (iPhone 12-class viewport).
    let page = chromium(390, 844).await;
    page.browser
        .goto(&format!("{}{}", floor.base(), url.path))
        .await
        .unwrap();
    page.wait_for_text("#number", &shown(&mine)).await;
    page.wait_for_text("#ahead", "2 人").await;
    page.wait_for_text("#wait", "分").await;
    page.screenshot(&format!("ticket-waiting-390x844-{}", backend_name(backend)))
        .await;

    let first = call_next(&mut staff, "1").await;
    page.wait_for_text("#ahead", "1 人").await;
    serve_and_finish(&mut staff, &first).await;
    let second = call_next(&mut staff, "1").await;
    page.wait_for_text("#ahead", "0 人").await;
    serve_and_finish(&mut staff, &second).await;
    let called = call_next(&mut staff, "2").await;
    assert_eq!(called.name, mine.name);
    page.wait_for_body_class("state-called", true).await;
    page.wait_for_text("#called", "2 番窓口へお越しください")
        .await;
    page.screenshot(&format!("ticket-called-390x844-{}", backend_name(backend)))
        .await;

    // No personal data and no internal names on the page.
    let text = page
        .browser
        .execute("return document.body.innerText;", vec![])
        .await
        .unwrap();
    let text = text.as_str().unwrap();
    assert!(!text.contains("municipalities/"), "{text}");
    assert!(!text.contains(OFFICE), "{text}");

    // English on request.
    page.browser
        .execute(
            "document.getElementById('lang').click(); return true;",
            vec![],
        )
        .await
        .unwrap();
    page.wait_for_text("#called", "Please go to counter 2")
        .await;

    // The visit ends: the page says so and stops following.
    serve_and_finish(&mut staff, &called).await;
    page.wait_for_body_class("final", true).await;
    page.close().await;
    floor.stop().await;
}

async fn floor_guide_finds_the_counter_by_kana(backend: Backend) {
    let floor = spawn_all(backend).await;
    let page = chromium(1920, 1080).await;
    page.browser
        .goto(&format!("{}/signage/offices/main/guide", floor.base()))
        .await
        .unwrap();
    page.wait_for_text("#map h3", "1階").await;

    let search = page
        .browser
        .find(fantoccini::Locator::Id("q"))
        .await
        .unwrap();
    search.send_keys("じゅうみんひょう").await.unwrap();
    page.wait_for_text(
        ".result[data-purpose=residence-certificate] .where",
        "1 番窓口",
    )
    .await;
    // The map highlights counter 1 in the certificates colour.
    let target = page
        .browser
        .execute(
            "const t = document.querySelector('#map rect.target'); return t && [t.dataset.counter, t.getAttribute('fill')];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(target, serde_json::json!(["1", "#E8833A"]));
    page.wait_for_text(".result", "本人確認書類").await;
    page.wait_for_text("#slots .ad", "三陸鉄道").await;
    page.screenshot(&format!(
        "guide-juminhyo-1920x1080-{}",
        backend_name(backend)
    ))
    .await;

    // A purpose in katakana, answered in Korean.
    page.browser
        .execute(
            "[...document.querySelectorAll('#langs button')].find((b) => b.textContent === '한국어').click(); return true;",
            vec![],
        )
        .await
        .unwrap();
    search.clear().await.unwrap();
    search.send_keys("ヒッコシ").await.unwrap();
    page.wait_for_text(".result[data-purpose=moving] .where", "3 번 창구")
        .await;
    page.wait_for_text(".result[data-purpose=moving] h3", "이사")
        .await;
    let target = page
        .browser
        .execute(
            "const t = document.querySelector('#map rect.target'); return t && t.dataset.counter;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(target, "3");
    page.screenshot(&format!(
        "guide-hikkoshi-ko-1920x1080-{}",
        backend_name(backend)
    ))
    .await;

    // Nothing found is said plainly.
    search.clear().await.unwrap();
    search.send_keys("zzzz").await.unwrap();
    page.wait_for_text("#results", "찾지 못했습니다").await;
    page.close().await;

    // The same guide on a phone.
    let phone = chromium(390, 844).await;
    phone
        .browser
        .goto(&format!("{}/signage/offices/main/guide", floor.base()))
        .await
        .unwrap();
    phone.wait_for_text("#map h3", "1階").await;
    phone
        .browser
        .execute(
            "[...document.querySelectorAll('#quick button')].find((b) => b.textContent === '家族が亡くなった').click(); return true;",
            vec![],
        )
        .await
        .unwrap();
    phone
        .wait_for_text(".result[data-purpose=bereavement] .where", "3 番窓口")
        .await;
    phone
        .screenshot(&format!("guide-okuyami-390x844-{}", backend_name(backend)))
        .await;
    phone.close().await;
    floor.stop().await;
}

/// The floor's name on the map's heading, per language of the guide (the
/// sample site's `signage.toml`).
const MAP_HEADINGS: [(&str, &str); 5] = [
    ("日本語", "— 1階"),
    ("English", "— 1F"),
    ("中文", "— 1楼"),
    ("한국어", "— 1층"),
    ("やさしいにほんご", "— 1かい"),
];

/// Every element of the floor map that overflows its box: an HTML element
/// whose content is wider or taller than it (`scrollWidth > clientWidth`),
/// or an SVG text wider or taller than the area drawn just before it.
const MAP_OVERFLOWS: &str = r#"
    const bad = [];
    for (const n of document.querySelectorAll('#map, #map *')) {
      if (n instanceof HTMLElement) {
        if (getComputedStyle(n).display === 'inline') continue;
        if (n.scrollWidth > n.clientWidth || n.scrollHeight > n.clientHeight) {
          bad.push(`${n.tagName}.${n.className} "${n.textContent}": ` +
            `${n.scrollWidth}×${n.scrollHeight} in ${n.clientWidth}×${n.clientHeight}`);
        }
      } else if (n instanceof SVGTextElement) {
        const area = n.previousElementSibling;
        const t = n.getBBox();
        const a = area.getBBox();
        if (t.x < a.x || t.y < a.y || t.x + t.width > a.x + a.width || t.y + t.height > a.y + a.height) {
          bad.push(`svg text "${n.textContent}": ${t.width.toFixed(1)}×${t.height.toFixed(1)} ` +
            `in ${a.width}×${a.height}`);
        }
      }
    }
    return bad;
"#;

/// The floor map's labels fit or wrap inside their areas in all five
/// languages on the touch panel (landscape and portrait), a laptop and a
/// phone (issue #23: the elevator's name ran out of its box at 1920×1080).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floor_map_labels_fit_their_areas_in_every_language_and_size() {
    let floor = spawn_all(Backend::Sqlite).await;
    for (width, height) in [(1920, 1080), (1080, 1920), (1280, 800), (390, 844)] {
        let page = chromium(width, height).await;
        page.browser
            .goto(&format!("{}/signage/offices/main/guide", floor.base()))
            .await
            .unwrap();
        for (language, heading) in MAP_HEADINGS {
            page.browser
                .execute(
                    "const [name] = arguments; \
                     [...document.querySelectorAll('#langs button')].find((b) => b.textContent === name).click(); \
                     return true;",
                    vec![language.into()],
                )
                .await
                .unwrap();
            page.wait_for_text("#map h3", heading).await;
            let labels = page
                .browser
                .execute(
                    "return [...document.querySelectorAll('#map .label, #map text')].map((n) => n.textContent);",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(
                labels.as_array().map(Vec::len),
                Some(10),
                "six counters and four areas are labelled: {labels}"
            );
            let overflows = page.browser.execute(MAP_OVERFLOWS, vec![]).await.unwrap();
            assert_eq!(
                overflows,
                serde_json::json!([]),
                "{language} at {width}×{height}"
            );
        }
        page.screenshot(&format!("guide-map-easy-{width}x{height}"))
            .await;
        page.close().await;
    }
    floor.stop().await;
}

/// Replaces the display's announcement timing with a manual clock: time
/// stands still until `__clock.advance(ms)` moves it, waking the page's
/// sleeps in order; speech takes 3 s a language. Records every change of
/// the announcement banner with the manual time.
const MANUAL_ANNOUNCEMENT_CLOCK: &str = r#"
    let now = 0;
    const timers = [];
    timing.now = () => now;
    timing.sleep = (ms) => new Promise((resolve) => timers.push({ at: now + Math.max(0, ms), resolve }));
    timing.speak = () => timing.sleep(3000);
    window.__banner = [];
    const box = document.getElementById('announcement');
    new MutationObserver(() => window.__banner.push([now, box.textContent]))
      .observe(box, { childList: true, subtree: true, characterData: true });
    window.__clock = {
      advance: async (ms) => {
        const end = now + ms;
        for (;;) {
          timers.sort((a, b) => a.at - b.at);
          if (timers.length === 0 || timers[0].at > end) break;
          const due = timers.shift();
          now = Math.max(now, due.at);
          due.resolve();
          // Let the page run what the timer woke before the next one.
          await new Promise((r) => setTimeout(r, 0));
        }
        now = end;
      },
    };
    return true;
"#;

/// A burst of calls does not leave the display announcing old numbers
/// (issue #23): with the sample's bound of 20 s and 7.2 s an announcement
/// (chime 1.2 s, 3 s Japanese, 3 s English, on the page's injected clock),
/// three of nine calls are spoken, the third cut off at 20 s, and the rest
/// are shown but not spoken; a recall of a number still waiting to be
/// announced replaces its announcement instead of adding one; the banner
/// never shows an announcement older than 20 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announcements_in_a_burst_stay_within_their_bound() {
    let floor = spawn_all(Backend::Sqlite).await;
    let mut staff = floor.queue(Role::Staff).await;
    let page = chromium(1920, 1080).await;
    page.browser
        .goto(&format!("{}/signage/offices/main/display", floor.base()))
        .await
        .unwrap();
    page.wait_for_text("#office", "大船渡市役所").await;
    // The office's settings (and the ticker) arrived with the guide data.
    page.wait_for_text("#ticker", "三陸鉄道").await;
    let bound = page
        .browser
        .execute("return announceWithinMs;", vec![])
        .await
        .unwrap();
    assert_eq!(bound, 20000, "announce_within_seconds of signage.toml");
    page.browser
        .execute(MANUAL_ANNOUNCEMENT_CLOCK, vec![])
        .await
        .unwrap();
    page.browser
        .execute(RECORD_APPEARANCES, vec![])
        .await
        .unwrap();

    // The burst, while the page's clock stands still: counter 1 calls,
    // counter 2 calls (and keeps) the second ticket, counter 1 goes on
    // through six more, then counter 2 recalls its ticket.
    let mut tickets = Vec::new();
    for _ in 0..8 {
        tickets.push(issue_ticket(&mut staff, "certificates").await);
    }
    let mut called = vec![call_next(&mut staff, "1").await];
    let kept = call_next(&mut staff, "2").await;
    called.push(kept.clone());
    for _ in 0..6 {
        let previous = called.last().unwrap().clone();
        let previous = if previous.name == kept.name {
            called[0].clone()
        } else {
            previous
        };
        serve_and_finish(&mut staff, &previous).await;
        called.push(call_next(&mut staff, "1").await);
    }
    staff
        .recall(madoguchi_proto::queue::v1::RecallRequest {
            name: kept.name.clone(),
            etag: String::new(),
        })
        .await
        .unwrap();
    let newest = last_sequence(&mut staff).await;
    page.wait_in_page(
        "const [newest, done] = arguments; \
         const ok = () => lastSequence >= newest; \
         if (ok()) return done(true); \
         const timer = setInterval(() => { if (ok()) { clearInterval(timer); done(true); } }, 10);",
        vec![newest.into()],
    )
    .await;
    let numbers: Vec<String> = called.iter().map(shown).collect();
    // The first is on the banner; eight wait, the recall in the place of
    // the call it repeats.
    let queued = page
        .browser
        .execute(
            "return [current && current.call.number, announcements.map((a) => [a.call.number, a.call.recall])];",
            vec![],
        )
        .await
        .unwrap();
    let mut expected_queue = vec![serde_json::json!([numbers[1], true])];
    expected_queue.extend(numbers[2..].iter().map(|n| serde_json::json!([n, false])));
    assert_eq!(
        queued,
        serde_json::json!([numbers[0], expected_queue]),
        "one announcement per number"
    );

    page.wait_in_page(
        "const [done] = arguments; __clock.advance(60000).then(() => done(true));",
        vec![],
    )
    .await;

    let state = page
        .browser
        .execute(
            "return [window.__banner, skipped, announcements.length, speaking, Object.keys(window.__appeared)];",
            vec![],
        )
        .await
        .unwrap();
    // What the banner showed, when (manual ms), and when it emptied.
    let banner: Vec<(u64, String)> = state[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e[0].as_u64().unwrap(), e[1].as_str().unwrap().to_owned()))
        .collect();
    let shown_at: Vec<(u64, &str)> = banner
        .iter()
        .map(|(t, text)| {
            let number = numbers
                .iter()
                .find(|n| text.contains(n.as_str()))
                .map_or("", String::as_str);
            (*t, number)
        })
        .collect();
    assert_eq!(
        shown_at,
        [
            (0, numbers[0].as_str()),
            (7200, numbers[1].as_str()),
            (14400, numbers[2].as_str()),
            (20000, ""),
        ],
        "{banner:?}"
    );
    assert!(
        banner[1].1.contains("もう一度お呼びします") && banner[1].1.contains("Calling again"),
        "the recall's words: {banner:?}"
    );
    assert_eq!(state[1], 5, "five calls shown but not spoken");
    assert_eq!(state[2], 0);
    assert_eq!(state[3], false);
    // Every call was on the board.
    let appeared: Vec<&str> = state[4]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    for number in &numbers {
        assert!(
            appeared.contains(&number.as_str()),
            "{number}: {appeared:?}"
        );
    }
    page.close().await;
    floor.stop().await;
}
