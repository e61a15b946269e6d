//! Configuration: the command line ([`cli`]), scenario files and flags resolved into
//! checked [`settings::Settings`], model profiles ([`profile`]) and the project's
//! default paths ([`paths`]).
pub mod candidates;
pub mod cli;
pub mod limits;
pub mod paths;
pub mod profile;
pub mod settings;
