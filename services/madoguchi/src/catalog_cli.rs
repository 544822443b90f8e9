//! `madoguchi catalog …`: the site's catalog read from the site folder,
//! without a server — for the people who write and review the rules.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use chrono::NaiveDate;
use madoguchi_catalog::{Catalog, QuestionKind};
use madoguchi_forms::domain::unanswered_questions;
use madoguchi_forms::explain::{explain, explain_text};
use madoguchi_forms::facts::{FactInput, facts};
use madoguchi_platform::site::Site;
use madoguchi_platform::wareki::WarekiDate;
use madoguchi_proto::identity::v1 as id;

/// `madoguchi catalog …` commands.
#[derive(Debug, clap::Subcommand)]
pub enum CatalogCommand {
    /// Per procedure of a life event, why it is on a resident's checklist
    /// or not, from the site's sample registry (`residents.csv` beside the
    /// site file) and the answers given.
    Explain {
        /// Life event id: death, move-in, move-out, relocation, birth, …
        event: String,
        /// The event's subject: a resident id of the registry CSV.
        #[arg(long)]
        resident: String,
        /// The visitor's resident id; default: the subject (none for a death).
        #[arg(long)]
        applicant: Option<String>,
        /// Event date, `2026-04-01` or `令和8年4月1日`; default: the
        /// recorded death date, else today.
        #[arg(long)]
        date: Option<String>,
        /// An answer, `question=value` (a person as a resident id); repeat.
        #[arg(long = "answer")]
        answers: Vec<String>,
        /// The site file; `catalog.toml` and `residents.csv` are read beside it.
        #[arg(
            long,
            env = "MADOGUCHI_SITE",
            default_value = "sites/ofunato/site.toml"
        )]
        site: PathBuf,
    },
}

/// Runs a catalog command.
pub fn run(command: CatalogCommand) -> anyhow::Result<()> {
    match command {
        CatalogCommand::Explain {
            event,
            resident,
            applicant,
            date,
            answers,
            site,
        } => {
            let text = explain_resident(
                &site,
                &event,
                &resident,
                applicant.as_deref(),
                date.as_deref(),
                &answers,
                today(),
            )?;
            crate::write_out(format_args!("{text}"));
            Ok(())
        }
    }
}

/// Today in Japan (UTC+9, no daylight saving).
fn today() -> NaiveDate {
    (chrono::Utc::now() + chrono::Duration::hours(9)).date_naive()
}

fn parse_date(text: &str) -> anyhow::Result<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").or_else(|_| {
        text.parse::<WarekiDate>()
            .map(WarekiDate::to_gregorian)
            .map_err(|e| anyhow!("date {text:?}: {e}"))
    })
}

/// The explanation as `madoguchi catalog explain` prints it.
pub fn explain_resident(
    site_path: &Path,
    event_id: &str,
    resident: &str,
    applicant: Option<&str>,
    date: Option<&str>,
    answers: &[String],
    today: NaiveDate,
) -> anyhow::Result<String> {
    let site = Site::load(site_path).map_err(|e| anyhow!("{}: {e}", site_path.display()))?;
    let catalog = Catalog::load_beside(site_path, &site)?;
    let event = catalog
        .life_event(event_id)
        .ok_or_else(|| anyhow!("{event_id} is not a life event of the catalog"))?;
    let csv_path = site_path.with_file_name("residents.csv");
    let text = std::fs::read_to_string(&csv_path)
        .with_context(|| format!("reading {}", csv_path.display()))?;
    let code = &site.municipality.code;
    let records = madoguchi_identity::registry::csv::parse(&text, code).map_err(|violations| {
        let lines: Vec<String> = violations.iter().map(|v| format!("{v:?}")).collect();
        anyhow!("{}: {}", csv_path.display(), lines.join("; "))
    })?;
    let Some(record) = records.iter().find(|r| r.resident_id == resident) else {
        bail!("resident {resident} is not in {}", csv_path.display());
    };
    let subject = record.to_proto();
    let household = record.household_id.as_ref().map(|h| id::Household {
        name: subject.household.clone(),
        household_id: h.clone(),
        members: records
            .iter()
            .filter(|r| r.household_id.as_ref() == Some(h))
            .map(|r| r.to_proto())
            .collect(),
        ..Default::default()
    });
    let person = |id: &str| format!("municipalities/{code}/residents/{id}");
    let applicant = match applicant {
        Some(id) => person(id),
        None if subject.life_status == id::LifeStatus::Deceased as i32 => String::new(),
        None => subject.name.clone(),
    };
    let applicant_resident = records.iter().any(|r| {
        r.to_proto().name == applicant
            && r.to_proto().residence_status == id::ResidenceStatus::Resident as i32
    });
    let mut given = Vec::new();
    for answer in answers {
        let Some((question, value)) = answer.split_once('=') else {
            bail!("answer {answer:?}: write question=value");
        };
        let Some(q) = event.questions.iter().find(|q| q.id == question) else {
            bail!("{question} is not a question of {event_id}");
        };
        let value = if q.kind == QuestionKind::Person {
            person(value)
        } else {
            value.to_owned()
        };
        given.push((question.to_owned(), value));
    }
    let event_date = match date {
        Some(text) => parse_date(text)?,
        None => record.death_date.unwrap_or(today),
    };
    let facts = facts(&FactInput {
        subject: &subject,
        household: household.as_ref(),
        applicant: &applicant,
        applicant_resident,
        photo_id: true,
        event_date,
        today,
        event,
        answers: &given,
    });
    let mut out = format!(
        "{} ({}) for resident {resident} on {event_date}\n",
        event.name_ja, event.id
    );
    for q in unanswered_questions(event, &facts) {
        out.push_str(&format!(
            "? {} {} — not answered ({})\n",
            q.id, q.text_ja, q.why_ja
        ));
    }
    out.push_str(&explain_text(&explain(&catalog, event, &facts)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// The seed family: 太郎's death explained for his daughter.
    #[test]
    fn explains_the_seed_familys_death() {
        let site = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sites/ofunato/site.toml");
        let answers: Vec<String> = [
            "funeral_held=yes",
            "chief_mourner=100002",
            "survivor=100002",
            "medical_costs=yes",
            "pension_book_found=no",
            "mourner_can_visit=no",
        ]
        .map(str::to_owned)
        .to_vec();
        let today = NaiveDate::from_ymd_opt(2026, 4, 1).unwrap();
        let text = explain_resident(
            &site,
            "death",
            "100001",
            Some("100003"),
            None,
            &answers,
            today,
        )
        .unwrap();
        for line in [
            "死亡 (death) for resident 100001 on 2023-06-16",
            "- shibo-todoke 死亡届・火葬許可申請: not !subject.deceased (subject.deceased = true)",
            "- setainushi-henko 世帯主変更届: not household.living_members>=2 (household.living_members = 1)",
            "- kokuho-soshitsu 国民健康保険 資格喪失・資格確認書等の返還: not subject.enrolment.national-health-insurance (subject.enrolment.national-health-insurance is absent)",
            "+ koki-soshitsu 後期高齢者医療 資格喪失・被保険者証の返還: subject.enrolment.late-elderly-medical",
            "+ sosaihi 葬祭費の支給申請（後期高齢者医療）: subject.enrolment.late-elderly-medical and answer.funeral_held=yes",
            "+ nenkin-kosei 年金受給権者死亡届（厚生年金・共済）: subject.pension=employees",
            "- nenkin-kokumin 国民年金 受給権者死亡届・未支給年金請求: not subject.pension=national (subject.pension = employees)",
            "+ izoku-kosei-nenkin 遺族厚生年金の請求: subject.pension=employees and household.spouse",
            "+ shomeisho-sozoku 相続手続用の証明書（除籍謄本・住民票の除票・評価証明書）: always, for this event",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\nnot in\n{text}");
        }
        assert!(
            !text.contains("? "),
            "every question applying was answered:\n{text}"
        );
        // Without answers, the questions that apply are listed with why.
        let bare = explain_resident(&site, "death", "100001", None, None, &[], today).unwrap();
        assert!(
            bare.contains("? funeral_held 葬儀は済みましたか — not answered"),
            "{bare}"
        );
    }
}
