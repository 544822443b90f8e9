//! AIP-style resource names of the identity service.

use std::fmt;

use madoguchi_platform::site::is_resource_id;
use madoguchi_platform::types::MunicipalityCode;

/// `municipalities/{code}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MunicipalityName(pub MunicipalityCode);

impl MunicipalityName {
    /// Parses `municipalities/{code}`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let code = text
            .strip_prefix("municipalities/")
            .ok_or_else(|| "must be municipalities/{code}".to_owned())?;
        MunicipalityCode::parse(code)
            .map(Self)
            .map_err(|e| format!("bad municipality code: {e}"))
    }

    /// The code.
    pub fn code(&self) -> &MunicipalityCode {
        &self.0
    }
}

impl fmt::Display for MunicipalityName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "municipalities/{}", self.0)
    }
}

/// `municipalities/{code}/{collection}/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChildName {
    /// The owning municipality.
    pub municipality: MunicipalityCode,
    /// Collection id, e.g. `residents`.
    pub collection: &'static str,
    /// Resource id.
    pub id: String,
}

impl ChildName {
    /// A name from its parts (the id must already be a resource id).
    pub fn new(municipality: &MunicipalityCode, collection: &'static str, id: &str) -> Self {
        Self {
            municipality: municipality.clone(),
            collection,
            id: id.to_owned(),
        }
    }

    /// Parses a name of `collection`.
    pub fn parse(text: &str, collection: &'static str) -> Result<Self, String> {
        let expected = || format!("must be municipalities/{{code}}/{collection}/{{id}}");
        let rest = text.strip_prefix("municipalities/").ok_or_else(expected)?;
        let mut parts = rest.split('/');
        let (Some(code), Some(found), Some(id), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(expected());
        };
        if found != collection {
            return Err(expected());
        }
        let municipality =
            MunicipalityCode::parse(code).map_err(|e| format!("bad municipality code: {e}"))?;
        if !is_resource_id(id) {
            return Err("the id must be 1-63 lowercase letters, digits or hyphens".to_owned());
        }
        Ok(Self {
            municipality,
            collection,
            id: id.to_owned(),
        })
    }
}

impl fmt::Display for ChildName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "municipalities/{}/{}/{}",
            self.municipality, self.collection, self.id
        )
    }
}

/// Checks a visit reference: any resource name under the municipality,
/// at most 256 printable ASCII characters without spaces. The identity
/// service stores it as given; the forms service owns visits.
pub fn parse_visit(text: &str, municipality: &MunicipalityCode) -> Result<String, String> {
    let prefix = format!("municipalities/{municipality}/");
    if text.len() > 256 || !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be a resource name of at most 256 printable characters".to_owned());
    }
    match text.strip_prefix(&prefix) {
        Some(rest) if !rest.is_empty() && !rest.split('/').any(str::is_empty) => {
            Ok(text.to_owned())
        }
        _ => Err(format!("must be a resource name under {prefix}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print() {
        let name = ChildName::parse("municipalities/032034/residents/100001", "residents");
        assert_eq!(
            name.as_ref().map(ToString::to_string).as_deref(),
            Ok("municipalities/032034/residents/100001")
        );
        for bad in [
            "municipalities/032034/households/100001",
            "municipalities/032035/residents/100001",
            "municipalities/032034/residents/",
            "municipalities/032034/residents/A1",
            "municipalities/032034/residents/1/2",
            "residents/1",
        ] {
            assert!(ChildName::parse(bad, "residents").is_err(), "{bad}");
        }
        let Ok(code) = MunicipalityCode::parse("032034") else {
            panic!("valid code");
        };
        assert!(parse_visit("municipalities/032034/visits/v1", &code).is_ok());
        for bad in [
            "municipalities/131016/visits/v1",
            "municipalities/032034/",
            "municipalities/032034/visits//x",
            "municipalities/032034/visits/a b",
        ] {
            assert!(parse_visit(bad, &code).is_err(), "{bad}");
        }
    }
}
