//! sea-orm entities of the POS tables (all prefixed `pos_`). Money is
//! integer yen (`i64`); timestamps are microseconds since the Unix epoch;
//! business days are days since 0001-01-01 (`BusinessDay::ordinal`), as in
//! the queue's tables.

/// An office: the receipt-number counter.
pub mod office {
    use sea_orm::entity::prelude::*;

    /// Row of `pos_offices`, seeded from the site.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "pos_offices")]
    pub struct Model {
        /// Resource name.
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        /// Name in Japanese, printed on receipts.
        pub name_ja: String,
        /// The last receipt number issued (never reset, never reused).
        pub last_receipt: i64,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A register and the head of its event log.
pub mod register {
    use sea_orm::entity::prelude::*;

    /// Row of `pos_registers`, created on first use.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "pos_registers")]
    pub struct Model {
        /// Resource name.
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        /// Owning office.
        pub office: String,
        /// Sequence of the newest event. Every write that concerns the
        /// register increments it first thing in its transaction, which
        /// serialises the register's writers (row lock until commit).
        pub last_sequence: i64,
        /// The open session, if any.
        pub open_session: Option<String>,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A register session.
pub mod session {
    use sea_orm::entity::prelude::*;

    /// Row of `pos_sessions`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "pos_sessions")]
    pub struct Model {
        /// Resource name.
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        /// Register.
        pub register: String,
        /// Office.
        pub office: String,
        /// 1 open, 2 closed.
        pub state: i16,
        /// Float.
        pub float_yen: i64,
        /// Counted at close.
        pub counted_yen: Option<i64>,
        /// Expected at close.
        pub expected_yen: Option<i64>,
        /// Business day of opening.
        pub business_day: i32,
        /// Opened at.
        pub opened_at: i64,
        /// Closed at.
        pub closed_at: Option<i64>,
        /// Opened by.
        pub opened_by: String,
        /// Closed by.
        pub closed_by: Option<String>,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// An order.
pub mod order {
    use sea_orm::entity::prelude::*;

    /// Row of `pos_orders`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "pos_orders")]
    pub struct Model {
        /// Resource name.
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        /// Office.
        pub office: String,
        /// The forms certificate request it charges (unique), if any.
        pub certificate_request: Option<String>,
        /// Sum of the lines.
        pub total_yen: i64,
        /// Created at.
        pub created_at: i64,
        /// Created by.
        pub created_by: String,
        /// Idempotency key (unique per office), if given.
        pub request_id: Option<String>,
        /// What the request asked for, to tell a retry from a reuse.
        pub fingerprint: String,
        /// Bumped by every payment and refund transaction: on PostgreSQL
        /// the update takes the order row's lock until commit, so money
        /// movements of one order are serialised.
        pub version: i64,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A line of an order.
pub mod order_line {
    use sea_orm::entity::prelude::*;

    /// Row of `pos_order_lines`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "pos_order_lines")]
    pub struct Model {
        /// Order.
        #[sea_orm(primary_key, auto_increment = false)]
        pub order_name: String,
        /// Position, from 0.
        #[sea_orm(primary_key, auto_increment = false)]
        pub line_index: i32,
        /// Fee item id.
        pub fee_item: String,
        /// Name as printed.
        pub name_ja: String,
        /// Fee per copy.
        pub unit_fee_yen: i64,
        /// Copies.
        pub copies: i32,
        /// Amount charged.
        pub amount_yen: i64,
        /// 歳入科目.
        pub revenue_account: String,
        /// Exemption reason code.
        pub exemption_reason: Option<String>,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A payment.
pub mod payment {
    use sea_orm::entity::prelude::*;

    /// Row of `pos_payments`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "pos_payments")]
    pub struct Model {
        /// Resource name.
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        /// Order. At most one payment per order is live: the partial
        /// unique index `pos_payments_one_live`.
        pub order_name: String,
        /// Office.
        pub office: String,
        /// Register.
        pub register: String,
        /// Session.
        pub session: String,
        /// Method (proto value).
        pub method: i16,
        /// State (proto value).
        pub state: i16,
        /// Amount.
        pub amount_yen: i64,
        /// Cash tendered.
        pub tendered_yen: i64,
        /// Change.
        pub change_yen: i64,
        /// Idempotency key, unique per office.
        pub request_id: String,
        /// What the request asked for.
        pub fingerprint: String,
        /// Terminal reference (unique), empty for cash.
        pub terminal_reference: Option<String>,
        /// Terminal result code.
        pub terminal_result_code: String,
        /// Approval number.
        pub approval_number: String,
        /// Terminal trace.
        pub terminal_trace: String,
        /// Receipt number, once approved.
        pub receipt_number: Option<String>,
        /// Receipts printed (first print and reprints).
        pub receipt_prints: i32,
        /// Business day it was taken on.
        pub business_day: i32,
        /// Created at.
        pub created_at: i64,
        /// Approved at (the receipt's issue time).
        pub approved_at: Option<i64>,
        /// Settled at.
        pub settled_at: Option<i64>,
        /// Created by.
        pub created_by: String,
        /// Resolved by.
        pub resolved_by: String,
        /// Resolution note.
        pub resolution_note: String,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A void or refund.
pub mod refund {
    use sea_orm::entity::prelude::*;

    /// Row of `pos_refunds`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "pos_refunds")]
    pub struct Model {
        /// Resource name.
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        /// Original payment.
        pub payment: String,
        /// Order.
        pub order_name: String,
        /// Office.
        pub office: String,
        /// 1 void, 2 refund.
        pub kind: i16,
        /// 1 requested, 2 completed, 3 failed.
        pub state: i16,
        /// Amount.
        pub amount_yen: i64,
        /// Refunded line; `None` for a void (every line in full).
        pub line_index: Option<i32>,
        /// Why.
        pub reason: String,
        /// Supervisor.
        pub requested_by: String,
        /// Register that pays it back.
        pub register: String,
        /// That register's session.
        pub session: String,
        /// Method of the original payment.
        pub method: i16,
        /// Terminal reference of this refund, for terminal methods.
        pub terminal_reference: Option<String>,
        /// Business day it was requested on.
        pub business_day: i32,
        /// Created at.
        pub created_at: i64,
        /// Settled at.
        pub settled_at: Option<i64>,
        /// Idempotency key, unique per office.
        pub request_id: String,
        /// What the request asked for.
        pub fingerprint: String,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// An entry of a register's event log.
pub mod event {
    use sea_orm::entity::prelude::*;

    /// Row of `pos_events`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "pos_events")]
    pub struct Model {
        /// Register.
        #[sea_orm(primary_key, auto_increment = false)]
        pub register: String,
        /// Sequence within the register.
        #[sea_orm(primary_key, auto_increment = false)]
        pub sequence: i64,
        /// Created at.
        pub created_at: i64,
        /// The encoded `RegisterEvent`.
        pub payload: Vec<u8>,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
