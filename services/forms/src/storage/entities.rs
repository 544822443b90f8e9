//! sea-orm entities of the forms tables (`forms_…`). Timestamps are
//! microseconds since the Unix epoch; business days are days since
//! 0001-01-01 (`BusinessDay::ordinal`). The variable parts of a row (the
//! answers, flags, a checklist item's procedure snapshot, a request's lines,
//! a signature's strokes) are stored as the encoded API message in
//! `payload`, so the stored form and the served form cannot drift apart.

/// A visit.
pub mod visit {
    use sea_orm::entity::prelude::*;

    /// Row of `forms_visits`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "forms_visits")]
    pub struct Model {
        /// Resource name.
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        /// Office resource name.
        pub office: String,
        /// Business day the visit started on.
        pub business_day: i32,
        /// `VisitState` number.
        pub state: i16,
        /// Start, µs.
        pub started_at: i64,
        /// Completion, µs.
        pub ended_at: Option<i64>,
        /// Version, incremented by every change (the etag). The increment
        /// is the first statement of every write, which serialises writers
        /// of one visit on PostgreSQL (row lock until commit).
        pub version: i64,
        /// Idempotency key of StartVisit.
        pub request_id: Option<String>,
        /// Encoded `Visit` header (everything but items, requests,
        /// signatures).
        pub payload: Vec<u8>,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A checklist item.
pub mod item {
    use sea_orm::entity::prelude::*;

    /// Row of `forms_items`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "forms_items")]
    pub struct Model {
        /// Visit resource name.
        #[sea_orm(primary_key, auto_increment = false)]
        pub visit: String,
        /// Procedure id.
        #[sea_orm(primary_key, auto_increment = false)]
        pub procedure: String,
        /// Checklist order.
        pub position: i32,
        /// `ItemStatus` number.
        pub status: i16,
        /// Encoded `ChecklistItem`.
        pub payload: Vec<u8>,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A certificate request.
pub mod request {
    use sea_orm::entity::prelude::*;

    /// Row of `forms_certificate_requests`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "forms_certificate_requests")]
    pub struct Model {
        /// Resource name.
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        /// Visit resource name.
        pub visit: String,
        /// `CertificateRequestState` number.
        pub state: i16,
        /// Creation, µs.
        pub created_at: i64,
        /// Encoded `CertificateRequest`.
        pub payload: Vec<u8>,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A signature.
pub mod signature {
    use sea_orm::entity::prelude::*;

    /// Row of `forms_signatures`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "forms_signatures")]
    pub struct Model {
        /// Resource name.
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        /// Visit resource name.
        pub visit: String,
        /// Creation, µs.
        pub created_at: i64,
        /// Encoded `Signature` with its strokes.
        pub payload: Vec<u8>,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A staff member who acted on a visit (for "staff met").
pub mod touch {
    use sea_orm::entity::prelude::*;

    /// Row of `forms_touches`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "forms_touches")]
    pub struct Model {
        /// Visit resource name.
        #[sea_orm(primary_key, auto_increment = false)]
        pub visit: String,
        /// Principal subject.
        #[sea_orm(primary_key, auto_increment = false)]
        pub staff: String,
        /// First action, µs.
        pub first_at: i64,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
