//! What the user reads: the log lines ([`lines`]), the results.json document
//! ([`results`]) and how files are written ([`files`]), the progress bar
//! ([`progress`]) and the machine's description ([`system`]). Nothing here measures.
pub mod accuracy;
pub mod compare;
pub mod files;
pub mod k8s;
pub mod latency;
pub mod lines;
pub mod op_profile;
pub mod progress;
pub mod report;
pub mod results;
pub mod system;
