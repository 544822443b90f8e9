//! The shipped catalog is complete: every procedure names its department
//! or outside agency, its legal basis, its deadline (or "none") and what a
//! late filing means, who may apply, what to bring and the public page it
//! was checked against; every condition names a fact the navigator sets or
//! a question of its own event; and the catalog is at the depth of a real
//! municipality's guides (at least 150 procedures over the seven life
//! events of the seed and more).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::path::Path;

use chrono::NaiveDate;
use madoguchi_catalog::{Catalog, Deadline};
use madoguchi_forms::facts::is_known_fact;
use madoguchi_platform::site::Site;

fn catalog() -> Catalog {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sites/ofunato/site.toml");
    let site = Site::load(&path).unwrap();
    Catalog::load_beside(&path, &site).unwrap()
}

#[test]
fn shipped_catalog_passes_the_lint() {
    let problems = catalog().lint(is_known_fact);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// 陸前高田市's catalog, the second sample site's: smaller (four life
/// events), held to the same lint, and checked against its own site file
/// (its four categories).
#[test]
fn rikuzentakata_catalog_passes_the_lint() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sites/rikuzentakata/site.toml");
    let site = Site::load(&path).unwrap();
    let catalog = Catalog::load_beside(&path, &site).unwrap();
    let problems = catalog.lint(is_known_fact);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let events: Vec<&str> = catalog.life_events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(events, ["death", "move-out", "move-in", "birth"]);
    // 戸籍 fees are national (手数料の標準に関する政令), the same in both cities.
    let ofunato = catalog_of_ofunato_fees();
    for id in [
        "koseki-tohon",
        "joseki-tohon",
        "kaisei-genkoseki",
        "koseki-kouiki",
    ] {
        assert_eq!(
            catalog.certificate(id).unwrap().fee_yen,
            ofunato[id],
            "{id}"
        );
    }
}

fn catalog_of_ofunato_fees() -> std::collections::HashMap<String, i64> {
    catalog()
        .certificates
        .iter()
        .map(|c| (c.id.clone(), c.fee_yen))
        .collect()
}

#[test]
fn the_lint_names_each_gap() {
    let mut catalog = catalog();
    let p = &mut catalog.procedures[0];
    p.legal_basis.clear();
    p.source = "city hall".into();
    p.deadline = Deadline::Unstated;
    p.applicants.clear();
    catalog.life_events[0].rules[0].when = vec!["subject.shoe_size>=40".into()];
    catalog.life_events[0].questions[0].why_ja.clear();
    let problems = catalog.lint(is_known_fact).join("\n");
    for needle in [
        "no legal_basis",
        "no source URL",
        "no deadline",
        "no applicants",
        "subject.shoe_size>=40",
        "does not say why",
    ] {
        assert!(problems.contains(needle), "{needle} not in {problems}");
    }
}

#[test]
fn depth_of_a_real_municipality() {
    let catalog = catalog();
    assert!(
        catalog.procedures.len() >= 150,
        "{} procedures",
        catalog.procedures.len()
    );
    let events: HashSet<&str> = catalog.life_events.iter().map(|e| e.id.as_str()).collect();
    for event in [
        "death",
        "move-in",
        "move-out",
        "relocation",
        "birth",
        "marriage",
        "divorce",
    ] {
        assert!(events.contains(event), "{event}");
    }
    assert!(events.len() >= 10, "{events:?}");
    // Outside agencies are pointers with what to bring, never one-stop.
    for agency in [
        "年金事務所",
        "法務局",
        "税務署",
        "警察署",
        "運輸支局",
        "ハローワーク",
        "家庭裁判所",
    ] {
        let p = catalog
            .procedures
            .iter()
            .find(|p| p.department.contains(agency))
            .unwrap_or_else(|| panic!("no procedure at {agency}"));
        assert!(p.category.is_empty() && !p.one_stop, "{}", p.id);
        assert!(!p.documents.is_empty(), "{}", p.id);
    }
}

#[test]
fn deadlines_count_as_their_laws_count() {
    let catalog = catalog();
    let death = NaiveDate::from_ymd_opt(2023, 6, 16).unwrap();
    let due = |id: &str| catalog.procedure(id).unwrap().deadline.due(death).unwrap();
    // 戸籍法43条: the day of the death is day one of the seven.
    assert_eq!(
        due("shibo-todoke"),
        NaiveDate::from_ymd_opt(2023, 6, 22).unwrap()
    );
    // 民法140条: the first day is not counted — 14 days end on 6月30日.
    assert_eq!(
        due("koki-soshitsu"),
        NaiveDate::from_ymd_opt(2023, 6, 30).unwrap()
    );
    // 民法143条: months end the day before the corresponding day.
    assert_eq!(
        due("juntei-shinkoku"),
        NaiveDate::from_ymd_opt(2023, 10, 16).unwrap()
    );
    assert_eq!(
        due("sozoku-zei"),
        NaiveDate::from_ymd_opt(2024, 4, 16).unwrap()
    );
    assert_eq!(
        due("sosaihi"),
        NaiveDate::from_ymd_opt(2025, 6, 16).unwrap()
    );
    // A month without the corresponding day ends on its last day.
    let dec31 = NaiveDate::from_ymd_opt(2023, 12, 30).unwrap();
    let four_months = catalog
        .procedure("juntei-shinkoku")
        .unwrap()
        .deadline
        .due(dec31);
    assert_eq!(four_months, NaiveDate::from_ymd_opt(2024, 4, 30));
    assert!(
        catalog
            .procedure("kon-in-todoke")
            .unwrap()
            .deadline
            .due(death)
            .is_none()
    );
}
