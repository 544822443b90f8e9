//! Why each procedure of a life event is on a household's checklist or
//! not: the navigator's decision, rule by rule, in words a reviewer can
//! check against the guides (`madoguchi catalog explain`).

use std::fmt::Write as _;

use crate::domain::{Condition, Facts};
use madoguchi_catalog::{Catalog, LifeEvent};

/// The decision for one procedure of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// Procedure id.
    pub procedure: String,
    /// Its name.
    pub name_ja: String,
    /// On the checklist.
    pub included: bool,
    /// Included: the conditions of the rule that matched. Excluded: for
    /// each rule, the first condition that fails and what the fact is.
    pub reasons: Vec<String>,
}

fn shown(facts: &Facts, fact: &str) -> String {
    facts
        .0
        .get(fact)
        .map_or_else(|| format!("{fact} is absent"), |v| format!("{fact} = {v}"))
}

/// Explains every procedure that a rule of `event` names, in rule order,
/// each once.
pub fn explain(catalog: &Catalog, event: &LifeEvent, facts: &Facts) -> Vec<Explanation> {
    let mut out: Vec<Explanation> = Vec::new();
    for rule in &event.rules {
        if out.iter().any(|e| e.procedure == rule.procedure) {
            continue;
        }
        let rules: Vec<_> = event
            .rules
            .iter()
            .filter(|r| r.procedure == rule.procedure)
            .collect();
        let matched = rules.iter().find(|r| facts.all(&r.when));
        let name_ja = catalog
            .procedure(&rule.procedure)
            .map(|p| p.name_ja.clone())
            .unwrap_or_default();
        let reasons = match matched {
            Some(r) if r.when.is_empty() => vec!["always, for this event".to_owned()],
            Some(r) => vec![r.when.join(" and ")],
            None => rules
                .iter()
                .map(|r| {
                    let failing = r
                        .when
                        .iter()
                        .find(|text| Condition::parse(text).map_or(true, |c| !c.holds(facts)));
                    match failing.and_then(|text| Condition::parse(text).ok().map(|c| (text, c))) {
                        Some((text, c)) => format!("not {text} ({})", shown(facts, c.fact())),
                        None => "no condition fails".to_owned(),
                    }
                })
                .collect(),
        };
        out.push(Explanation {
            procedure: rule.procedure.clone(),
            name_ja,
            included: matched.is_some(),
            reasons,
        });
    }
    out
}

/// The explanations as text: one line per procedure, `+` included, `-`
/// not, then why.
pub fn explain_text(explanations: &[Explanation]) -> String {
    let mut text = String::new();
    for e in explanations {
        let mark = if e.included { '+' } else { '-' };
        let _ = writeln!(
            text,
            "{mark} {} {}: {}",
            e.procedure,
            e.name_ja,
            e.reasons.join("; or ")
        );
    }
    text
}
