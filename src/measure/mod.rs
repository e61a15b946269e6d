//! The measurement core: when each query is planned ([`schedule`]), releasing it on
//! time ([`clock`], [`issuer`]), serving it ([`pool`]), recording its latency
//! ([`stats`]), running and judging one step ([`step`]) and searching the highest
//! passing rate ([`search`]). Nothing here formats output or reads settings.
pub mod clock;
pub mod issuer;
pub mod pool;
pub mod queue;
pub mod schedule;
pub mod search;
pub mod stats;
pub mod step;
