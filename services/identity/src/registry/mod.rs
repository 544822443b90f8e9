//! The `ResidentRegistry` port: the municipality's resident-record system
//! (住民基本台帳システム) is external, so the identity service reads it
//! only through this trait. The reference adapter
//! ([`crate::storage::TableRegistry`]) serves a table imported from CSV
//! ([`csv`]); a city plugs its own system in by implementing the trait.

pub mod csv;

use chrono::NaiveDate;
use madoguchi_platform::error::ServiceError;
use madoguchi_platform::types::MunicipalityCode;
use madoguchi_proto::identity::v1 as pb;
use madoguchi_proto::types::v1 as types;

use crate::domain::names::ChildName;
use crate::domain::person::{PersonName, date_to_proto};
use crate::domain::proxy::{HeadRelation, Residence};

/// 続柄, classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relationship {
    /// 世帯主.
    Head,
    /// 妻・夫.
    Spouse,
    /// 子.
    Child,
    /// 父・母.
    Parent,
    /// Other relative.
    OtherRelative,
    /// Not a relative.
    NonRelative,
}

impl Relationship {
    /// The CSV spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Relationship::Head => "head",
            Relationship::Spouse => "spouse",
            Relationship::Child => "child",
            Relationship::Parent => "parent",
            Relationship::OtherRelative => "other-relative",
            Relationship::NonRelative => "non-relative",
        }
    }

    /// Parses the CSV spelling.
    pub fn parse(text: &str) -> Option<Self> {
        [
            Relationship::Head,
            Relationship::Spouse,
            Relationship::Child,
            Relationship::Parent,
            Relationship::OtherRelative,
            Relationship::NonRelative,
        ]
        .into_iter()
        .find(|r| r.as_str() == text)
    }

    fn to_proto(self) -> pb::Relationship {
        match self {
            Relationship::Head => pb::Relationship::Head,
            Relationship::Spouse => pb::Relationship::Spouse,
            Relationship::Child => pb::Relationship::Child,
            Relationship::Parent => pb::Relationship::Parent,
            Relationship::OtherRelative => pb::Relationship::OtherRelative,
            Relationship::NonRelative => pb::Relationship::NonRelative,
        }
    }

    /// As the proxy rules see it.
    pub fn head_relation(self) -> HeadRelation {
        match self {
            Relationship::Head => HeadRelation::Head,
            Relationship::Spouse => HeadRelation::Spouse,
            Relationship::Child => HeadRelation::Child,
            Relationship::Parent => HeadRelation::Parent,
            Relationship::OtherRelative | Relationship::NonRelative => HeadRelation::Other,
        }
    }
}

/// Residence spellings in CSV.
pub fn residence_str(residence: Residence) -> &'static str {
    match residence {
        Residence::Resident => "resident",
        Residence::NonResident => "non-resident",
        Residence::MovedOut => "moved-out",
    }
}

/// Parses a residence spelling.
pub fn parse_residence(text: &str) -> Option<Residence> {
    match text {
        "resident" => Some(Residence::Resident),
        "non-resident" => Some(Residence::NonResident),
        "moved-out" => Some(Residence::MovedOut),
        _ => None,
    }
}

/// An address on the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressRecord {
    /// 7-digit postal code.
    pub postal_code: String,
    /// 6-digit municipality code.
    pub municipality_code: MunicipalityCode,
    /// 都道府県.
    pub prefecture: String,
    /// 市区町村.
    pub municipality: String,
    /// 町域・番地.
    pub street: String,
    /// 方書.
    pub building: String,
}

impl AddressRecord {
    /// The proto form.
    pub fn to_proto(&self) -> types::Address {
        types::Address {
            postal_code: self.postal_code.clone(),
            municipality_code: self.municipality_code.to_string(),
            prefecture: self.prefecture.clone(),
            municipality: self.municipality.clone(),
            street: self.street.clone(),
            building: self.building.clone(),
        }
    }

    /// One line, as on a card: 岩手県大船渡市盛町字宇津野沢15.
    pub fn one_line(&self) -> String {
        format!(
            "{}{}{}{}",
            self.prefecture, self.municipality, self.street, self.building
        )
    }
}

/// One enrolment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrolmentRecord {
    /// Kind.
    pub kind: pb::EnrolmentKind,
    /// Disability kind, when a certificate.
    pub disability_kind: pb::DisabilityKind,
    /// Disability grade, 0 when not applicable.
    pub grade: u32,
    /// Pension kind, when a pension.
    pub pension_kind: pb::PensionKind,
    /// Note.
    pub note: String,
}

impl EnrolmentRecord {
    /// The proto form.
    pub fn to_proto(&self) -> pb::Enrolment {
        pb::Enrolment {
            kind: self.kind as i32,
            disability_kind: self.disability_kind as i32,
            grade: self.grade,
            pension_kind: self.pension_kind as i32,
            note: self.note.clone(),
        }
    }
}

/// A person in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResidentRecord {
    /// The municipality whose registry holds the record.
    pub municipality: MunicipalityCode,
    /// 宛名番号.
    pub resident_id: String,
    /// 世帯番号, if registered in a household here.
    pub household_id: Option<String>,
    /// Name and reading.
    pub name: PersonName,
    /// Birth date.
    pub birth_date: NaiveDate,
    /// ISO 5218.
    pub sex: i32,
    /// 続柄, classified (`None` for a non-resident).
    pub relationship: Option<Relationship>,
    /// 続柄 as written.
    pub relationship_label: String,
    /// Address.
    pub address: AddressRecord,
    /// Residence.
    pub residence: Residence,
    /// Date of death.
    pub death_date: Option<NaiveDate>,
    /// Enrolments.
    pub enrolments: Vec<EnrolmentRecord>,
    /// Ids of spouse and lineal relatives outside the household.
    pub relatives: Vec<String>,
}

impl ResidentRecord {
    /// Resource name.
    pub fn name(&self) -> ChildName {
        ChildName::new(&self.municipality, "residents", &self.resident_id)
    }

    /// The proto form.
    pub fn to_proto(&self) -> pb::Resident {
        pb::Resident {
            name: self.name().to_string(),
            resident_id: self.resident_id.clone(),
            person_name: Some(self.name.to_proto()),
            birth_date: Some(date_to_proto(self.birth_date)),
            sex: self.sex,
            address: Some(self.address.to_proto()),
            household: self
                .household_id
                .as_ref()
                .map(|h| ChildName::new(&self.municipality, "households", h).to_string())
                .unwrap_or_default(),
            relationship: self
                .relationship
                .map_or(pb::Relationship::Unspecified, Relationship::to_proto)
                as i32,
            relationship_label: self.relationship_label.clone(),
            residence_status: match self.residence {
                Residence::Resident => pb::ResidenceStatus::Resident,
                Residence::NonResident => pb::ResidenceStatus::NonResident,
                Residence::MovedOut => pb::ResidenceStatus::MovedOut,
            } as i32,
            life_status: if self.death_date.is_some() {
                pb::LifeStatus::Deceased
            } else {
                pb::LifeStatus::Living
            } as i32,
            death_date: self.death_date.map(date_to_proto),
            enrolments: self
                .enrolments
                .iter()
                .map(EnrolmentRecord::to_proto)
                .collect(),
            relatives: self
                .relatives
                .iter()
                .map(|r| ChildName::new(&self.municipality, "residents", r).to_string())
                .collect(),
        }
    }
}

/// The port to the resident registry.
#[tonic::async_trait]
pub trait ResidentRegistry: Send + Sync + std::fmt::Debug + 'static {
    /// One person by id.
    async fn resident(
        &self,
        municipality: &MunicipalityCode,
        resident_id: &str,
    ) -> Result<Option<ResidentRecord>, ServiceError>;

    /// Every person born on `birth_date` (the caller filters by name:
    /// birth dates are selective, and name folding rules stay in one
    /// place).
    async fn born_on(
        &self,
        municipality: &MunicipalityCode,
        birth_date: NaiveDate,
    ) -> Result<Vec<ResidentRecord>, ServiceError>;

    /// Every member of a household, in no particular order.
    async fn household(
        &self,
        municipality: &MunicipalityCode,
        household_id: &str,
    ) -> Result<Vec<ResidentRecord>, ServiceError>;
}
