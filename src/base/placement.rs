//! Where the work runs (`--cores`, `--socket-id`), as `numactl --physcpubind/--cpunodebind
//! --membind` would place it: the CPUs every thread may use, the NUMA node memory comes
//! from, and the CPUs of the thread that issues queries.
//!
//! Threads inherit their creator's CPU mask and memory policy, and the runtimes create
//! their pools from the thread that loads them (or from a worker, for later sessions).
//! So [`apply`] sets both on every thread that exists and on the calling thread before
//! anything is loaded, and everything made afterwards stays inside. The one exception
//! is the issuer: when the machine has CPUs outside `--cores`, it sends queries from
//! those ([`IssuerGuard`]), so that the schedule never waits for a worker's core; with
//! none spare it shares the workers' CPUs, as under numactl.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

/// A set of CPU ids.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuSet(pub BTreeSet<usize>);

/// The most CPU ids a list may name (Linux's CPU mask size).
const MAX_CPU: usize = 8191;

impl CpuSet {
    /// Parses a CPU list as the kernel writes one (`0-3,8`, `5`); `None` for anything
    /// else (empty parts, reversed ranges, ids past [`MAX_CPU`]).
    pub fn parse(s: &str) -> Option<CpuSet> {
        let mut set = BTreeSet::new();
        for part in s.trim().split(',') {
            let part = part.trim();
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
                None => {
                    let a: usize = part.parse().ok()?;
                    (a, a)
                }
            };
            if a > b || b > MAX_CPU {
                return None;
            }
            set.extend(a..=b);
        }
        (!set.is_empty()).then_some(CpuSet(set))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn contains(&self, cpu: usize) -> bool {
        self.0.contains(&cpu)
    }

    pub fn intersection(&self, other: &CpuSet) -> CpuSet {
        CpuSet(self.0.intersection(&other.0).copied().collect())
    }

    pub fn difference(&self, other: &CpuSet) -> CpuSet {
        CpuSet(self.0.difference(&other.0).copied().collect())
    }
}

impl fmt::Display for CpuSet {
    /// The kernel's list syntax, ranges joined: `0-3,8`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        let mut it = self.0.iter().copied().peekable();
        while let Some(start) = it.next() {
            let mut end = start;
            while it.peek() == Some(&(end + 1)) {
                end = it.next().unwrap_or(end);
            }
            parts.push(if start == end {
                start.to_string()
            } else {
                format!("{start}-{end}")
            });
        }
        f.write_str(&parts.join(","))
    }
}

/// The machine as placement sees it: the CPUs this process may use, and its NUMA nodes
/// with their CPUs (one node holding every CPU where the kernel lists none).
#[derive(Clone, Debug, PartialEq)]
pub struct Topology {
    pub allowed: CpuSet,
    pub nodes: Vec<(usize, CpuSet)>,
}

impl Topology {
    /// Reads the process's CPU mask and `/sys/devices/system/node/node*/cpulist`.
    pub fn read() -> Topology {
        let allowed = thread_cpus(0).unwrap_or_else(|| {
            CpuSet((0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect())
        });
        let mut nodes: Vec<(usize, CpuSet)> = std::fs::read_dir("/sys/devices/system/node")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let id: usize = name.strip_prefix("node")?.parse().ok()?;
                let list = std::fs::read_to_string(e.path().join("cpulist")).ok()?;
                // A node without CPUs (memory only) has an empty list.
                Some((id, CpuSet::parse(&list).unwrap_or_default()))
            })
            .collect();
        nodes.sort_by_key(|(id, _)| *id);
        if nodes.is_empty() {
            nodes.push((0, allowed.clone()));
        }
        Topology { allowed, nodes }
    }
}

/// Where the run goes: what [`decide`] chose.
#[derive(Clone, Debug, PartialEq)]
pub struct Placement {
    /// Every thread but the issuer: workers and the runtimes' pools.
    pub cpus: CpuSet,
    /// `--socket-id`: the NUMA node memory is bound to.
    pub node: Option<usize>,
    /// Where the issuer sends queries from: CPUs left outside `cpus`, or `cpus`.
    pub issuer: CpuSet,
}

impl serde::Serialize for Placement {
    /// `settings.placement` in results.json: the CPU lists as the kernel writes them.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut m = s.serialize_struct("Placement", 4)?;
        m.serialize_field("cpus", &self.cpus.to_string())?;
        m.serialize_field("node", &self.node)?;
        m.serialize_field(
            "memory_policy",
            match self.node {
                Some(_) => "bind",
                None => "default",
            },
        )?;
        m.serialize_field("issuer_cpus", &self.issuer.to_string())?;
        m.end()
    }
}

/// The placement `--cores` and `--socket-id` ask for on `topo`, or why it cannot be.
/// A pure function, so that each rule is a row of a table test.
pub fn decide(
    topo: &Topology,
    cores: Option<&str>,
    socket: Option<usize>,
) -> Result<Option<Placement>, String> {
    if cores.is_none() && socket.is_none() {
        return Ok(None);
    }
    let node_ids = || {
        topo.nodes
            .iter()
            .map(|(id, _)| id.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut cpus = topo.allowed.clone();
    if let Some(n) = socket {
        let Some((_, node_cpus)) = topo.nodes.iter().find(|(id, _)| *id == n) else {
            return Err(format!(
                "--socket-id {n}: this machine has NUMA node(s) {} only",
                node_ids()
            ));
        };
        cpus = cpus.intersection(node_cpus);
        if cpus.is_empty() {
            return Err(format!(
                "--socket-id {n}: none of this process's CPUs ({}) is on node {n}",
                topo.allowed
            ));
        }
    }
    if let Some(list) = cores {
        let Some(asked) = CpuSet::parse(list) else {
            return Err(format!(
                "--cores '{list}' is not a CPU list: give ids and ranges such as 0-3,8"
            ));
        };
        let missing = asked.difference(&cpus);
        if !missing.is_empty() {
            let within = match socket {
                Some(n) => format!(" on node {n}"),
                None => String::new(),
            };
            return Err(format!(
                "--cores {list}: CPU(s) {missing} are not available{within}; this process may use {cpus}"
            ));
        }
        cpus = asked;
    }
    let spare = topo.allowed.difference(&cpus);
    let issuer = if spare.is_empty() {
        cpus.clone()
    } else {
        spare
    };
    Ok(Some(Placement {
        cpus,
        node: socket,
        issuer,
    }))
}

/// The CPU mask of thread `tid` (0: the calling thread).
pub fn thread_cpus(tid: i32) -> Option<CpuSet> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the kernel fills it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return None;
        }
        let cpus = (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect();
        Some(CpuSet(cpus))
    }
}

/// Pins thread `tid` (0: the calling thread) to `cpus`.
pub fn pin_thread(tid: i32, cpus: &CpuSet) -> Result<(), String> {
    // SAFETY: the set is built with the libc macros within CPU_SETSIZE.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus.0.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
            libc::CPU_SET(c, &mut set);
        }
        if libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(format!(
                "could not pin thread {tid} to CPUs {cpus}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// `set_mempolicy(MPOL_BIND, {node})` for the calling thread (and the threads it makes).
fn bind_memory(node: usize) -> Result<(), String> {
    const MPOL_BIND: libc::c_long = 2;
    let bits = 8 * std::mem::size_of::<libc::c_ulong>();
    let mut mask = vec![0 as libc::c_ulong; node / bits + 1];
    mask[node / bits] |= 1 << (node % bits);
    // SAFETY: the mask holds `maxnode` bits (the kernel reads maxnode - 1 of them).
    let r = unsafe {
        libc::syscall(
            libc::SYS_set_mempolicy,
            MPOL_BIND,
            mask.as_ptr(),
            (mask.len() * bits + 1) as libc::c_ulong,
        )
    };
    if r != 0 {
        return Err(format!(
            "could not bind memory to NUMA node {node}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// What [`apply`] set, for the issuer to move itself to and back.
static APPLIED: OnceLock<Placement> = OnceLock::new();

/// Confines every thread of the process that exists now, and the calling thread
/// (hence every thread it makes later), to `p.cpus`, and binds the calling thread's
/// memory to `p.node`. Once per process; a second call with the same placement is a
/// no-op (tuning loads several configurations).
pub fn apply(p: &Placement) -> Result<(), String> {
    if let Some(done) = APPLIED.get() {
        return if done == p {
            Ok(())
        } else {
            Err("the placement is set once per process".into())
        };
    }
    if let Some(node) = p.node {
        bind_memory(node)?;
    }
    let tasks: Vec<i32> = std::fs::read_dir(Path::new("/proc/self/task"))
        .map_err(|e| format!("could not list this process's threads: {e}"))?
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
        .collect();
    for tid in tasks {
        // A thread that ended meanwhile is no error.
        if let Err(e) = pin_thread(tid, &p.cpus) {
            if std::path::Path::new(&format!("/proc/self/task/{tid}")).exists() {
                return Err(e);
            }
        }
    }
    pin_thread(0, &p.cpus)?;
    let _ = APPLIED.set(p.clone());
    Ok(())
}

/// While it lives, the calling thread (the issuer) runs on the placement's issuer
/// CPUs; dropped, it is back on the workers' CPUs. Nothing without a placement.
pub struct IssuerGuard(bool);

impl IssuerGuard {
    pub fn enter() -> IssuerGuard {
        match APPLIED.get() {
            Some(p) if p.issuer != p.cpus => IssuerGuard(pin_thread(0, &p.issuer).is_ok()),
            _ => IssuerGuard(false),
        }
    }
}

impl Drop for IssuerGuard {
    fn drop(&mut self) {
        if let (true, Some(p)) = (self.0, APPLIED.get()) {
            let _ = pin_thread(0, &p.cpus);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &str) -> CpuSet {
        CpuSet::parse(s).unwrap()
    }

    #[test]
    fn cpu_lists_parse_and_print_as_the_kernel_writes_them() {
        for (text, want) in [
            ("0", Some("0")),
            ("0-3,8", Some("0-3,8")),
            (" 3,1,2 ", Some("1-3")),
            ("0-0", Some("0")),
            ("5,5", Some("5")),
            ("", None),
            ("1,", None),
            ("3-1", None),
            ("a", None),
            ("-1", None),
            ("9999", None),
        ] {
            assert_eq!(
                CpuSet::parse(text).map(|s| s.to_string()).as_deref(),
                want,
                "{text:?}"
            );
        }
    }

    #[test]
    fn placement_rules() {
        let two = Topology {
            allowed: set("0-1"),
            nodes: vec![(0, set("0-1"))],
        };
        let numa = Topology {
            allowed: set("0-7"),
            nodes: vec![(0, set("0-3")), (1, set("4-7"))],
        };
        type Row<'a> = (
            &'a Topology,
            Option<&'a str>,
            Option<usize>,
            Result<Option<(&'a str, Option<usize>, &'a str)>, &'a str>,
        );
        let rows: &[Row] = &[
            (&two, None, None, Ok(None)),
            // One core of two: the issuer gets the other.
            (&two, Some("0"), None, Ok(Some(("0", None, "1")))),
            // Every core: the issuer shares them.
            (&two, Some("0-1"), None, Ok(Some(("0-1", None, "0-1")))),
            (&two, None, Some(0), Ok(Some(("0-1", Some(0), "0-1")))),
            (
                &two,
                Some("99"),
                None,
                Err("CPU(s) 99 are not available; this process may use 0-1"),
            ),
            (&two, Some("0-x"), None, Err("is not a CPU list")),
            (
                &two,
                None,
                Some(9),
                Err("--socket-id 9: this machine has NUMA node(s) 0 only"),
            ),
            // A socket: its CPUs, memory bound there, the issuer on the other socket.
            (&numa, None, Some(1), Ok(Some(("4-7", Some(1), "0-3")))),
            (
                &numa,
                Some("4,5"),
                Some(1),
                Ok(Some(("4-5", Some(1), "0-3,6-7"))),
            ),
            (
                &numa,
                Some("0"),
                Some(1),
                Err("CPU(s) 0 are not available on node 1; this process may use 4-7"),
            ),
        ];
        for (topo, cores, socket, want) in rows {
            let got = decide(topo, *cores, *socket);
            match (got, want) {
                (Ok(got), Ok(want)) => {
                    let got = got.map(|p| (p.cpus.to_string(), p.node, p.issuer.to_string()));
                    let want = want.map(|(c, n, i)| (c.to_string(), n, i.to_string()));
                    assert_eq!(got, want, "{cores:?} {socket:?}");
                }
                (Err(e), Err(w)) => assert!(e.contains(w), "{cores:?} {socket:?}: {e}"),
                (got, want) => panic!("{cores:?} {socket:?}: {got:?}, wanted {want:?}"),
            }
        }
    }

    #[test]
    fn this_machine_reads_as_at_least_one_node_holding_our_cpus() {
        let t = Topology::read();
        assert!(!t.allowed.is_empty());
        assert!(!t.nodes.is_empty());
        assert!(t
            .allowed
            .0
            .iter()
            .all(|c| t.nodes.iter().any(|(_, n)| n.contains(*c))));
    }
}
