//! Configuration: the command line ([`cli`]), scenario files and flags resolved into
//! checked [`settings::Settings`], and model profiles ([`profile`]).
pub mod cli;
pub mod profile;
pub mod settings;
