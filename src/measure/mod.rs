//! The measurement core: when each query is planned ([`schedule`]), releasing it on
//! time ([`crate::base::clock`], [`queue`], [`issuer`]), serving it ([`pool`]),
//! recording its latency ([`stats`]), running one step ([`step`]) and judging it
//! ([`verdict`]), telling a broken system from a slow one ([`fault`]), and searching
//! the highest passing rate ([`search`]). `virtual_clock` runs the same step and
//! search logic on a discrete-event model, for exact tests; it is compiled for the
//! unit tests only, since nothing in the product uses it. Nothing here formats
//! output or reads settings.
pub mod fault;
pub mod issuer;
pub mod live_histogram;
pub mod policy;
pub mod pool;
pub mod queue;
pub mod runner;
pub mod schedule;
pub mod search;
pub mod stats;
pub mod step;
pub mod sync;
pub mod tail_fit;
pub mod theory;
pub mod verdict;
#[cfg(test)]
pub mod virtual_clock;
