//! The identity rules, free of I/O: resource names, person data checks
//! and name folding, the My Number value type, 本人確認 and proxy
//! decisions. Every rule here is a pure function of its inputs and the
//! date it is judged on, so each is a table test.

pub mod my_number;
pub mod names;
pub mod person;
pub mod proxy;
pub mod verification;
