//! Load spread over agents: the parts of the distributed path that are pure or plain
//! protocol, apart from the processes that use them (`app::agent` serves steps,
//! `app::coordinator` asks for them).
//!
//! A step split over N agents is the step one process would run: its schedule is the
//! union of the agents' ([`split`]), each agent starts at the same instant of the
//! coordinator's clock ([`clock`]), and the coordinator judges the merged exact counts
//! with the same rule ([`merge`], then `measure::step::summarize_open`).

pub mod clock;
pub mod merge;
pub mod protocol;
pub mod split;
