//! sea-orm entities of the identity tables. Dates are stored as days since
//! 0001-01-01 (`i32`), instants as microseconds since the Unix epoch
//! (`i64`): both compare and index the same way on SQLite and PostgreSQL.

/// A person of the reference registry.
pub mod resident {
    use sea_orm::entity::prelude::*;

    /// Row of `identity_residents`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "identity_residents")]
    pub struct Model {
        /// 地方公共団体コード of the registry.
        #[sea_orm(primary_key, auto_increment = false)]
        pub municipality_code: String,
        /// 宛名番号.
        #[sea_orm(primary_key, auto_increment = false)]
        pub resident_id: String,
        /// 世帯番号.
        pub household_id: Option<String>,
        /// 氏.
        pub family_name: String,
        /// 名.
        pub given_name: String,
        /// 氏カナ.
        pub family_name_kana: String,
        /// 名カナ.
        pub given_name_kana: String,
        /// Birth date, days since 0001-01-01.
        pub birth_date: i32,
        /// ISO 5218.
        pub sex: i32,
        /// 続柄 class (CSV spelling), if any.
        pub relationship: Option<String>,
        /// 続柄 as written.
        pub relationship_label: String,
        /// Postal code.
        pub postal_code: String,
        /// Municipality code of the address.
        pub address_municipality_code: String,
        /// 都道府県.
        pub prefecture: String,
        /// 市区町村.
        pub municipality: String,
        /// 町域・番地.
        pub street: String,
        /// 方書.
        pub building: String,
        /// resident / non-resident / moved-out.
        pub residence_status: String,
        /// Date of death, days since 0001-01-01.
        pub death_date: Option<i32>,
        /// Enrolments in the CSV cell form.
        pub enrolments: String,
        /// Relatives' ids, `;`-separated.
        pub relatives: String,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A stored identity verification.
pub mod verification {
    use sea_orm::entity::prelude::*;

    /// Row of `identity_verifications`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "identity_verifications")]
    pub struct Model {
        /// Resource name.
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        /// Municipality code.
        pub municipality_code: String,
        /// The visit.
        pub visit: String,
        /// The encoded `IdentityVerification`.
        pub payload: Vec<u8>,
        /// Creation instant, µs since the epoch.
        pub create_time: i64,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A stored card read.
pub mod card_read {
    use sea_orm::entity::prelude::*;

    /// Row of `identity_card_reads`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "identity_card_reads")]
    pub struct Model {
        /// Resource name.
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        /// Municipality code.
        pub municipality_code: String,
        /// The visit.
        pub visit: String,
        /// The encoded `CardRead` (masked; never the number).
        pub payload: Vec<u8>,
        /// Nonce ‖ AES-256-GCM ciphertext ‖ tag of the My Number, when
        /// retained; bound to `name` and `visit`.
        pub my_number_sealed: Option<Vec<u8>>,
        /// The procedure that justified retention.
        pub my_number_purpose: String,
        /// Creation instant, µs since the epoch.
        pub create_time: i64,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// One audited access to a My Number.
pub mod audit_event {
    use sea_orm::entity::prelude::*;

    /// Row of `identity_audit_events`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "identity_audit_events")]
    pub struct Model {
        /// Resource name.
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        /// Municipality code.
        pub municipality_code: String,
        /// Instant, µs since the epoch.
        pub time: i64,
        /// Principal subject.
        pub actor: String,
        /// Principal role.
        pub actor_role: String,
        /// `AuditAction` number.
        pub action: i32,
        /// Card read concerned.
        pub card_read: String,
        /// The visit.
        pub visit: String,
        /// Purpose (procedure id).
        pub purpose: String,
        /// Why denied, if denied.
        pub detail: String,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
