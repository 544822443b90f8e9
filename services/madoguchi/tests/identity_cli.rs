//! The README's 書かない visit through the real binary: `madoguchi serve` on
//! the embedded default, then `madoguchi identity …` (find the daughter,
//! verify her, check what she may do for her mother) and `madoguchi visit …`
//! (navigate, record her mother's 委任状, certificates — one line refused
//! per item —, one signature, the open items).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_madoguchi");

fn site() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sites/ofunato/site.toml")
}

/// Runs `madoguchi <group> <args>` against `server`: stdout, or stderr on
/// failure.
fn cli(server: &str, data_dir: &Path, group: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new(BIN)
        .arg(group)
        .args(["--server", server])
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("MADOGUCHI_TOKEN")
        .output()
        .map_err(|e| e.to_string())?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// The word after `prefix ` on the first line that has it.
fn id_after(out: &str, prefix: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no `{prefix}` in {out}"))
        .to_owned()
}

/// The table row of a procedure.
fn row<'a>(out: &'a str, procedure: &str) -> &'a str {
    out.lines()
        .find(|l| l.contains(&format!(" {procedure} ")))
        .unwrap_or_else(|| panic!("{procedure} not in {out}"))
}

/// `madoguchi serve` on the sample site in `dir`; its child and URL.
async fn serve(dir: &Path) -> (tokio::process::Child, String) {
    let mut server = tokio::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .env("MADOGUCHI_ADMIN_LISTEN", "127.0.0.1:0")
        .arg(dir)
        .arg("--site")
        .arg(site())
        .env_remove("MADOGUCHI_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = server.stdout.take().unwrap_or_else(|| panic!("stdout"));
    let mut lines = BufReader::new(stdout).lines();
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(addr) = line.strip_prefix("listening on ") {
                return addr.to_owned();
            }
        }
        panic!("server exited");
    })
    .await
    .unwrap_or_else(|_| panic!("server did not start"));
    (server, format!("http://{addr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kakanai_visit_with_the_identity_and_visit_commands() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (mut server, url) = serve(dir.path()).await;
    let data = dir.path().to_owned();
    // The server runs on the real clock: the letter is dated last week.
    let letter_date = (chrono::Utc::now() + chrono::Duration::hours(9) - chrono::Duration::days(7))
        .date_naive()
        .to_string();

    tokio::task::spawn_blocking(move || {
        let run = |group: &str, args: &[&str]| {
            cli(&url, &data, group, args).unwrap_or_else(|e| panic!("{group} {args:?}: {e}"))
        };
        run("queue", &["issue", "--category", "life-events"]);
        run("queue", &["call-next", "--counter", "2"]);

        // Who is she? Found by kana and 和暦 birth date; her parents' household.
        let found = run(
            "identity",
            &[
                "search",
                "--family",
                "オクヤミ",
                "--given",
                "ツルコ",
                "--birth",
                "昭和47年10月31日",
            ],
        );
        assert!(
            found.contains("100003") && found.contains("住登外"),
            "{found}"
        );
        let father = run("identity", &["resident", "100001"]);
        assert!(
            father.contains("花子") && father.contains("令和5年6月16日"),
            "{father}"
        );

        // 本人確認: a health insurance card alone is not enough; her My
        // Number card is.
        let weak = run(
            "identity",
            &[
                "verify",
                "--resident",
                "100003",
                "--family",
                "おくやみ",
                "--given",
                "つる子",
                "--birth",
                "S47.10.31",
                "--document",
                "health-insurance-card",
            ],
        );
        assert!(
            weak.contains("NOT verified") && weak.contains("SECOND_DOCUMENT_NEEDED"),
            "{weak}"
        );
        let verified = run(
            "identity",
            &[
                "verify",
                "--resident",
                "100003",
                "--family",
                "おくやみ",
                "--given",
                "つる子",
                "--birth",
                "1972-10-31",
                "--document",
                "my-number-card:2030-10-31",
            ],
        );
        assert!(
            verified.contains(" verified (VERIFICATION_OUTCOME_VERIFIED_BY_PHOTO_ID"),
            "{verified}"
        );
        let verification = id_after(&verified, "verification ");

        // What may she do for her mother? Without the letter: not the 葬祭費.
        let without = run(
            "identity",
            &[
                "check-proxy",
                "--verification",
                &verification,
                "--procedure",
                "sosaihi:100002",
            ],
        );
        assert!(
            row(&without, "sosaihi").contains("POWER_OF_ATTORNEY_MISSING"),
            "{without}"
        );
        let with = run(
            "identity",
            &[
                "check-proxy",
                "--verification",
                &verification,
                "--procedure",
                "sosaihi:100002",
                "--procedure",
                "kogaku-ryoyohi:100002",
                "--letter-from",
                "100002",
                "--letter-scope",
                "sosaihi",
                "--letter-date",
                &letter_date,
            ],
        );
        assert!(row(&with, "sosaihi").contains("yes"), "{with}");
        assert!(
            row(&with, "kogaku-ryoyohi").contains("OUT_OF_SCOPE"),
            "{with}"
        );

        // The visit: navigator, her mother's letter recorded once.
        let started = run(
            "visit",
            &[
                "start",
                "--resident",
                "100003",
                "--family",
                "おくやみ",
                "--given",
                "つる子",
                "--birth",
                "昭和47年10月31日",
                "--document",
                "my-number-card",
                "--ticket",
                "B001",
            ],
        );
        let visit = id_after(&started, "visit ");
        let navigated = run(
            "visit",
            &[
                "navigate",
                &visit,
                "--event",
                "death",
                "--subject",
                "100001",
                "--date",
                "令和5年6月16日",
                "--answer",
                "funeral_held=yes",
                "--answer",
                "chief_mourner=100002",
                "--answer",
                "survivor=100002",
                "--answer",
                "medical_costs=no",
                "--answer",
                "pension_book_found=no",
                "--answer",
                "mourner_can_visit=no",
                "--relation",
                "100001=lineal",
                "--relation",
                "100002=lineal",
            ],
        );
        // 葬祭費 lapsed two years after the death (時効); 未支給年金 waits for
        // her mother's letter.
        assert!(row(&navigated, "sosaihi").contains("時効"), "{navigated}");
        assert!(
            row(&navigated, "mishikyu-nenkin").contains("後日"),
            "{navigated}"
        );
        assert!(navigated.contains("委任状"), "{navigated}");
        let with_letter = run(
            "visit",
            &[
                "proxy",
                &visit,
                "--from",
                "100002",
                "--scope",
                "mishikyu-nenkin,shotoku-kazei",
                "--date",
                &letter_date,
            ],
        );
        assert!(
            row(&with_letter, "sosaihi").contains("時効"),
            "{with_letter}"
        );
        assert!(
            row(&with_letter, "mishikyu-nenkin").contains("未"),
            "{with_letter}"
        );

        // Certificates: her mother's seal certificate is not on the letter,
        // refused line by line; the others are confirmed.
        let refused = cli(
            &url,
            &data,
            "visit",
            &[
                "certificates",
                &visit,
                "--relation",
                "lineal",
                "--line",
                "100002:shotoku-kazei:1:相続手続",
                "--line",
                "100002:inkan:1:相続手続",
            ],
        )
        .err()
        .unwrap_or_default();
        assert!(
            refused.contains("FailedPrecondition")
                && refused.contains("lines[1] PROXY_DECISION_REASON_OUT_OF_SCOPE"),
            "{refused}"
        );
        let confirmed = run(
            "visit",
            &[
                "certificates",
                &visit,
                "--relation",
                "lineal",
                "--line",
                "100001:joseki-tohon:2:相続手続",
                "--line",
                "100002:shotoku-kazei:1:相続手続",
            ],
        );
        assert!(
            confirmed.contains("confirmed: 2 lines, ¥1800"),
            "{confirmed}"
        );

        // One signature; the list of what is still open.
        run("visit", &["sign", &visit]);
        let out = data.join("open-items.pdf");
        let out_arg = out.to_string_lossy().into_owned();
        let done = run("visit", &["complete", &visit, "-o", &out_arg]);
        assert!(done.contains("年金事務所"), "{done}");
        let pdf = std::fs::read(&out).unwrap_or_else(|e| panic!("{e}"));
        assert!(pdf.starts_with(b"%PDF"));
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    server.kill().await.unwrap_or_else(|e| panic!("{e}"));
}

/// A family moving in is not in the registry: staff write the household
/// the father declares into a file once, the navigator runs from it, and
/// the 住民異動届 is printed from the same data with his one signature.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_in_navigated_from_a_declared_household_file() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (mut server, url) = serve(dir.path()).await;
    let data = dir.path().to_owned();
    let household = data.join("household.toml");
    std::fs::write(
        &household,
        r#"subject = 0

[address]
postal_code = "0220002"
prefecture = "岩手県"
municipality = "大船渡市"
street = "盛町字下舘下18番地1"

[[members]]
family_name = "新来"
given_name = "健"
family_name_kana = "シンライ"
given_name_kana = "ケン"
birth_date = "1988-05-10"
relation = "head"
insurance = "employee"
source = "card"

[[members]]
family_name = "新来"
given_name = "舞"
birth_date = "平成2年7月1日"
relation = "spouse"
insurance = "employee"
source = "card"

[[members]]
family_name = "新来"
given_name = "陽"
birth_date = "2017-09-15"
relation = "child"
insurance = "employee"
school_year = 2
source = "card"

[[members]]
family_name = "新来"
given_name = "結"
birth_date = "2022-02-10"
relation = "child"
insurance = "employee"
"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));

    tokio::task::spawn_blocking(move || {
        let run = |group: &str, args: &[&str]| {
            cli(&url, &data, group, args).unwrap_or_else(|e| panic!("{group} {args:?}: {e}"))
        };
        run("queue", &["issue", "--category", "life-events"]);
        run("queue", &["call-next", "--counter", "3"]);
        let started = run(
            "visit",
            &[
                "start",
                "--family",
                "新来",
                "--given",
                "健",
                "--birth",
                "1988-05-10",
                "--document",
                "my-number-card",
                "--ticket",
                "B001",
            ],
        );
        let visit = id_after(&started, "visit ");
        let household_arg = household.to_string_lossy().into_owned();
        let navigate = |extra: &[&str]| {
            let mut args = vec![
                "navigate",
                visit.as_str(),
                "--event",
                "move-in",
                "--household",
                household_arg.as_str(),
                "--date",
                "2026-03-28",
                "--answer",
                "has_my_number_card=yes",
                "--answer",
                "needs_childcare=yes",
                "--answer",
                "has_driving_licence=yes",
                "--answer",
                "owns_car=no",
                "--answer",
                "wants_seal_registration=no",
            ];
            args.extend_from_slice(extra);
            cli(&url, &data, "visit", &args)
        };
        // Not both a registered subject and a declaration.
        let both = navigate(&["--subject", "100001"])
            .err()
            .unwrap_or_else(|| panic!("a subject and a household were both taken"));
        assert!(both.contains("cannot be used with"), "{both}");
        let navigated = navigate(&[]).unwrap_or_else(|e| panic!("{e}"));
        for procedure in ["tennyu-todoke", "jido-teate-nintei", "gakko-tennyugaku"] {
            row(&navigated, procedure);
        }
        run("visit", &["sign", &visit]);
        let out = data.join("move-in.pdf");
        let out_arg = out.to_string_lossy().into_owned();
        let printed = run("visit", &["print", &visit, "--move-in", "-o", &out_arg]);
        assert!(printed.contains("wrote"), "{printed}");
        let pdf = std::fs::read(&out).unwrap_or_else(|e| panic!("{e}"));
        assert!(pdf.starts_with(b"%PDF"));

        // A word the file format does not know names its member and field.
        std::fs::write(
            &household,
            std::fs::read_to_string(&household)
                .unwrap_or_else(|e| panic!("{e}"))
                .replace("relation = \"spouse\"", "relation = \"wife\""),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let bad = navigate(&[])
            .err()
            .unwrap_or_else(|| panic!("an unknown relation was taken"));
        assert!(bad.contains("members[1].relation"), "{bad}");
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    server.kill().await.unwrap_or_else(|e| panic!("{e}"));
}
