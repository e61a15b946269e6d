//! Tuning: which configuration (workers × threads per session × batch) serves each
//! target best. The candidates and how they are named ([`candidates`]), and the
//! predicted answer of a calibrated candidate ([`predict`]): the concepts and the pure
//! decisions. Running a candidate's calibration and searches is the `run` subcommand's
//! (`app::tune`, `app::tune_processes`, in a child process per TensorFlow setting).
pub mod candidates;
pub mod predict;
