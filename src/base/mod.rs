//! The vocabulary both sides share, importing nothing else of the crate: the system
//! under test as backends implement it and the measurement core drives it ([`sut`]),
//! what a model is and where it runs ([`model`]), the documented limits and durations
//! ([`limits`]), the precise clock ([`clock`]), the heap after a load ([`memory`]), the project's default paths
//! ([`paths`]), how messages quote values ([`text`]), where an inference's time goes
//! per operation ([`op_profile`]) and on which CPUs and node the work runs
//! ([`placement`]).
pub mod clock;
pub mod limits;
pub mod memory;
pub mod model;
pub mod op_profile;
pub mod paths;
pub mod placement;
pub mod sut;
pub mod text;
