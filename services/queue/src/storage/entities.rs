//! sea-orm entities of the queue's tables. Timestamps are stored as
//! microseconds since the Unix epoch (`i64`), which compares and indexes
//! the same way on SQLite and PostgreSQL; business days as days since
//! 0001-01-01 (see `BusinessDay::ordinal`).

/// An office with its queue rules and the head of its event log.
pub mod office {
    use sea_orm::entity::prelude::*;

    /// Row of `queue_offices`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "queue_offices")]
    pub struct Model {
        /// Resource name, `municipalities/{m}/offices/{o}`.
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        /// 地方公共団体コード.
        pub municipality_code: String,
        /// Display name in Japanese.
        pub name_ja: String,
        /// Display name in English.
        pub name_en: String,
        /// Recalls per leg before no-show.
        pub recall_limit: i32,
        /// Highest ticket number before wrapping to 1.
        pub max_number: i32,
        /// Minutes a counter counts as open after a call.
        pub counter_open_minutes: i32,
        /// Sequence of the newest event. Every state change increments it
        /// first thing in its transaction, which also serialises the
        /// office's writers (the row lock is held until commit).
        pub last_sequence: i64,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A ticket category of an office.
pub mod category {
    use sea_orm::entity::prelude::*;

    /// Row of `queue_categories`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "queue_categories")]
    pub struct Model {
        /// Resource name.
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        /// Owning office's resource name.
        pub office: String,
        /// Order on kiosks and boards.
        pub position: i32,
        /// Prefix letter.
        pub prefix: String,
        /// Name in Japanese.
        pub name_ja: String,
        /// Name in English.
        pub name_en: String,
        /// `#RRGGBB`.
        pub colour: String,
        /// Tickets per business day, 0 = unlimited.
        pub daily_quota: i32,
        /// Assumed service minutes before measurements exist.
        pub default_service_minutes: i32,
        /// False once removed from the site file.
        pub active: bool,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A counter of an office.
pub mod counter {
    use sea_orm::entity::prelude::*;

    /// Row of `queue_counters`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "queue_counters")]
    pub struct Model {
        /// Resource name.
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        /// Owning office's resource name.
        pub office: String,
        /// Order on boards.
        pub position: i32,
        /// Number shown above the counter.
        pub display_number: String,
        /// Floor.
        pub floor: i32,
        /// `#RRGGBB`.
        pub colour: String,
        /// Resource names of the categories it serves, newline-separated.
        pub categories: String,
        /// False once removed from the site file.
        pub active: bool,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The number counter of a category for one business day.
pub mod number_counter {
    use sea_orm::entity::prelude::*;

    /// Row of `queue_number_counters`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "queue_number_counters")]
    pub struct Model {
        /// Category resource name.
        #[sea_orm(primary_key, auto_increment = false)]
        pub category: String,
        /// Business day ordinal.
        #[sea_orm(primary_key, auto_increment = false)]
        pub business_day: i32,
        /// The last number handed out.
        pub last_number: i32,
        /// Tickets issued that day (for the quota; unaffected by wraps).
        pub issued_count: i32,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A visit: one ticket.
pub mod visit {
    use sea_orm::entity::prelude::*;

    /// Row of `queue_visits`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "queue_visits")]
    pub struct Model {
        /// Ticket id (UUIDv7).
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// Office resource name.
        pub office: String,
        /// Category the ticket was issued in.
        pub issue_category: String,
        /// Business day ordinal.
        pub business_day: i32,
        /// Ticket number.
        pub number: i32,
        /// Printed number, e.g. `A012`.
        pub display_number: String,
        /// Accessibility priority.
        pub priority: bool,
        /// `VisitState` as integer.
        pub state: i16,
        /// Issue time, µs since epoch.
        pub issued_at: i64,
        /// Sequence of the issue event: arrival order within the office.
        pub issue_sequence: i64,
        /// Index of the current leg.
        pub current_leg: i32,
        /// Category of the current leg.
        pub current_category: String,
        /// Counter the ticket is called to or served at.
        pub current_counter: Option<String>,
        /// Recalls on the current leg.
        pub recall_count: i32,
        /// Version for etags; incremented on every change.
        pub version: i64,
        /// Sequence of the event that produced this version.
        pub last_sequence: i64,
        /// Printed offline from a number lease and imported later.
        pub issued_offline: bool,
        /// Offline tickets: when the import reached the cluster, µs.
        pub imported_at: Option<i64>,
        /// Offline tickets: the device that printed it.
        pub issuing_device: Option<String>,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// One leg of a visit.
pub mod leg {
    use sea_orm::entity::prelude::*;

    /// Row of `queue_legs`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "queue_legs")]
    pub struct Model {
        /// Visit id.
        #[sea_orm(primary_key, auto_increment = false)]
        pub visit_id: String,
        /// Position in the visit, from 0.
        #[sea_orm(primary_key, auto_increment = false)]
        pub leg_index: i32,
        /// Category resource name.
        pub category: String,
        /// `VisitState` of the leg while current (waiting, called, serving),
        /// `LEG_ENDED` (0) once ended. The waiting index is partial on
        /// `state = 1`.
        pub state: i16,
        /// 0 for priority tickets, 1 otherwise: ascending order calls
        /// priority first.
        pub priority_rank: i16,
        /// The visit's issue sequence: FIFO order that survives transfers.
        pub arrival_sequence: i64,
        /// Tie-break after `arrival_sequence`: 0 for tickets issued online;
        /// for an imported offline ticket its issue time in µs, placing it
        /// after the last online ticket issued before it (whose sequence it
        /// shares) and before the next one.
        pub arrival_offset: i64,
        /// Counter that called it.
        pub counter: Option<String>,
        /// µs since epoch.
        pub enqueued_at: i64,
        /// µs since epoch.
        pub called_at: Option<i64>,
        /// µs since epoch.
        pub started_at: Option<i64>,
        /// µs since epoch.
        pub ended_at: Option<i64>,
        /// `LegOutcome` as integer.
        pub outcome: i16,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The office event log (an outbox).
pub mod event {
    use sea_orm::entity::prelude::*;

    /// Row of `queue_events`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "queue_events")]
    pub struct Model {
        /// Office resource name.
        #[sea_orm(primary_key, auto_increment = false)]
        pub office: String,
        /// Per-office sequence, gapless, in commit order.
        #[sea_orm(primary_key, auto_increment = false)]
        pub sequence: i64,
        /// `EventType` as integer.
        pub event_type: i16,
        /// Visit the event is about.
        pub visit_id: String,
        /// µs since epoch.
        pub created_at: i64,
        /// The encoded `madoguchi.queue.v1.OfficeEvent`.
        pub payload: Vec<u8>,
        /// W3C `traceparent` of the traced request that wrote the event.
        pub trace_parent: Option<String>,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Idempotency records of `request_id`s.
pub mod request {
    use sea_orm::entity::prelude::*;

    /// Row of `queue_requests`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "queue_requests")]
    pub struct Model {
        /// Office resource name.
        #[sea_orm(primary_key, auto_increment = false)]
        pub office: String,
        /// The client's UUID.
        #[sea_orm(primary_key, auto_increment = false)]
        pub request_id: String,
        /// RPC and its parameters; a reuse with other parameters is refused.
        pub fingerprint: String,
        /// The visit the request produced.
        pub visit_id: String,
        /// µs since epoch.
        pub created_at: i64,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Blocks of numbers leased to devices for offline ticketing.
pub mod lease {
    use sea_orm::entity::prelude::*;

    /// Row of `queue_leases`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "queue_leases")]
    pub struct Model {
        /// Lease id (UUIDv7).
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// Office resource name.
        pub office: String,
        /// Category resource name.
        pub category: String,
        /// Device id holding the lease.
        pub device: String,
        /// Business day ordinal the numbers belong to.
        pub business_day: i32,
        /// The numbers in order of use, comma-separated.
        pub numbers: String,
        /// µs since epoch.
        pub created_at: i64,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// One leased number: reserved until its ticket is imported or its day
/// ends. The primary key makes a number leasable once per day.
pub mod leased_number {
    use sea_orm::entity::prelude::*;

    /// Row of `queue_leased_numbers`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "queue_leased_numbers")]
    pub struct Model {
        /// Category resource name.
        #[sea_orm(primary_key, auto_increment = false)]
        pub category: String,
        /// Business day ordinal.
        #[sea_orm(primary_key, auto_increment = false)]
        pub business_day: i32,
        /// The number.
        #[sea_orm(primary_key, auto_increment = false)]
        pub number: i32,
        /// The lease it belongs to.
        pub lease_id: String,
        /// The visit imported with this number; `None` while unused.
        pub visit_id: Option<String>,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The latest health report of each device.
pub mod device {
    use sea_orm::entity::prelude::*;

    /// Row of `queue_devices`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "queue_devices")]
    pub struct Model {
        /// Resource name, `…/offices/{o}/devices/{id}`.
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        /// Office resource name.
        pub office: String,
        /// `DeviceKind` as integer.
        pub kind: i16,
        /// Answers on its port.
        pub connected: bool,
        /// Paper low.
        pub paper_near_end: bool,
        /// Paper out.
        pub paper_out: bool,
        /// Cover open.
        pub cover_open: bool,
        /// Last error text, empty if none.
        pub last_error: String,
        /// When the gateway saw this state, µs.
        pub observed_at: i64,
        /// When the report arrived, µs.
        pub reported_at: i64,
        /// Reporting principal.
        pub gateway: String,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
