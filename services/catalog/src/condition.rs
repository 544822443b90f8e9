//! The condition language of the catalog's rules, questions and flags
//! (`docs/catalog.md`, "Rule grammar"): a condition is parsed once when the
//! catalog loads and evaluated on the navigator's facts. It lives with the
//! catalog because a catalog is only valid if every condition parses.

use std::collections::BTreeMap;

/// Why a condition was rejected: the text and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("condition {0:?}: {1}")]
pub struct ConditionError(pub String, pub &'static str);

/// How a condition compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    /// The fact is present (and not `no`/`false`).
    Holds,
    /// The fact is absent (or `no`/`false`).
    NotHolds,
    /// Equal text.
    Equals,
    /// Different text (or absent).
    Differs,
    /// Integer ≥.
    AtLeast,
    /// Integer <.
    Below,
}

/// One condition of a rule, e.g. `subject.enrolment.long-term-care`,
/// `!applicant.resident`, `answer.funeral_held=yes`,
/// `household.living_members>=2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    fact: String,
    comparison: Comparison,
    value: String,
}

fn is_fact_key(key: &str) -> bool {
    !key.is_empty()
        && key.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        })
}

impl Condition {
    /// Parses one condition.
    pub fn parse(text: &str) -> Result<Self, ConditionError> {
        let bad = |why| ConditionError(text.to_owned(), why);
        let (fact, comparison, value) = if let Some(rest) = text.strip_prefix('!') {
            (rest, Comparison::NotHolds, "")
        } else if let Some((fact, value)) = text.split_once(">=") {
            (fact, Comparison::AtLeast, value)
        } else if let Some((fact, value)) = text.split_once("!=") {
            (fact, Comparison::Differs, value)
        } else if let Some((fact, value)) = text.split_once('<') {
            (fact, Comparison::Below, value)
        } else if let Some((fact, value)) = text.split_once('=') {
            (fact, Comparison::Equals, value)
        } else {
            (text, Comparison::Holds, "")
        };
        if !is_fact_key(fact) {
            return Err(bad("a fact is dot-separated lowercase words"));
        }
        let needs_value = !matches!(comparison, Comparison::Holds | Comparison::NotHolds);
        if needs_value && (value.is_empty() || value.contains(['=', '<', '>', '!'])) {
            return Err(bad("expects one value after the operator"));
        }
        if matches!(comparison, Comparison::AtLeast | Comparison::Below)
            && value.parse::<i64>().is_err()
        {
            return Err(bad("compares with an integer"));
        }
        Ok(Self {
            fact: fact.to_owned(),
            comparison,
            value: value.to_owned(),
        })
    }

    /// The fact key it reads, e.g. `subject.age`.
    pub fn fact(&self) -> &str {
        &self.fact
    }

    /// Whether the condition holds on `facts`.
    pub fn holds(&self, facts: &Facts) -> bool {
        let fact = facts.0.get(&self.fact).map(String::as_str);
        let truthy = fact.is_some_and(|v| v != "no" && v != "false");
        let number = || fact.and_then(|v| v.parse::<i64>().ok());
        let bound = self.value.parse::<i64>().unwrap_or(0);
        match self.comparison {
            Comparison::Holds => truthy,
            Comparison::NotHolds => !truthy,
            Comparison::Equals => fact == Some(self.value.as_str()),
            Comparison::Differs => fact != Some(self.value.as_str()),
            Comparison::AtLeast => number().is_some_and(|n| n >= bound),
            Comparison::Below => number().is_some_and(|n| n < bound),
        }
    }
}

/// What the navigator knows: fact keys (`subject.…`, `household.…`,
/// `applicant.…`, `answer.…`) to values; boolean facts are `"true"`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts(pub BTreeMap<String, String>);

impl Facts {
    /// Sets a fact.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0.insert(key.into(), value.into());
    }

    /// Sets a boolean fact when `value` is true.
    pub fn flag(&mut self, key: impl Into<String>, value: bool) {
        if value {
            self.0.insert(key.into(), "true".to_owned());
        }
    }

    /// Whether every condition holds. Conditions were checked when the
    /// catalog was loaded; an unparsable one never holds.
    pub fn all(&self, conditions: &[String]) -> bool {
        conditions.iter().all(|text| {
            Condition::parse(text)
                .map(|c| c.holds(self))
                .unwrap_or(false)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn facts(pairs: &[(&str, &str)]) -> Facts {
        Facts(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn conditions_table() {
        let f = facts(&[
            ("subject.enrolment.long-term-care", "true"),
            ("answer.funeral_held", "yes"),
            ("answer.pension_book_found", "no"),
            ("household.living_members", "1"),
            ("answer.chief_mourner", "household"),
        ]);
        for (text, expected) in [
            ("subject.enrolment.long-term-care", true),
            ("subject.enrolment.pension", false),
            ("!subject.enrolment.pension", true),
            ("!subject.enrolment.long-term-care", false),
            ("answer.funeral_held=yes", true),
            ("answer.funeral_held=no", false),
            ("answer.pension_book_found", false),
            ("!answer.pension_book_found", true),
            ("household.living_members>=2", false),
            ("household.living_members>=1", true),
            ("household.living_members<2", true),
            ("household.missing<2", false),
            ("answer.chief_mourner!=applicant", true),
            ("answer.chief_mourner!=household", false),
            ("answer.unanswered!=yes", true),
        ] {
            let condition = Condition::parse(text).unwrap();
            assert_eq!(condition.holds(&f), expected, "{text}");
        }
    }

    #[test]
    fn bad_conditions_are_rejected() {
        for text in [
            "",
            "Subject.x",
            "a..b",
            "a=",
            "a>=x",
            "a==b",
            "a b",
            "a<",
            "!",
        ] {
            assert!(Condition::parse(text).is_err(), "{text:?}");
        }
    }
}
