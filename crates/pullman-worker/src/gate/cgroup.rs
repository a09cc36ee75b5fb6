//! Which cgroup the worker is in, and where its files are.
//!
//! `/proc/self/cgroup` names the worker's cgroup in each hierarchy: `0::/PATH` for the
//! unified hierarchy (cgroup v2), `ID:CONTROLLERS:/PATH` for each v1 hierarchy. A v1
//! controller's files are under `/sys/fs/cgroup/CONTROLLERS/PATH` (or `/sys/fs/cgroup/NAME/PATH`,
//! the link distributions make for each controller), v2's under `/sys/fs/cgroup/PATH`.
//!
//! In a container without a cgroup namespace of its own, `PATH` names the cgroup as the host
//! sees it, while the container has its own cgroup mounted at the root: a `PATH` that does not
//! exist under the mount is read as the mount's root.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::error::WorkerError;

/// The cgroup hierarchy a controller's files belong to; their names differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    V1,
    V2,
}

/// The directory of the worker's cgroup for one controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CgroupDir {
    pub(crate) path: PathBuf,
    pub(crate) version: Version,
}

/// The worker's cgroup directory for `controller` (`cpu`, `cpuacct`, `memory`): from the v1
/// hierarchy that has the controller, else the v2 one; `None` when neither is there (no
/// `/proc/self/cgroup`, or nothing mounted where it says).
pub(crate) fn find(
    proc_root: &Path,
    cgroup_root: &Path,
    controller: &str,
) -> Result<Option<CgroupDir>, WorkerError> {
    let membership = proc_root.join("self/cgroup");
    let text = match std::fs::read_to_string(&membership) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(WorkerError::Read {
                path: membership,
                source,
            })
        }
    };
    let mut unified = None;
    for line in text.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let relative = path.trim_start_matches('/');
        if controllers.is_empty() {
            if id == "0" {
                unified = Some(relative);
            }
            continue;
        }
        if controllers.split(',').any(|c| c == controller) {
            for mount in [controllers, controller] {
                let base = cgroup_root.join(mount);
                if base.is_dir() {
                    return Ok(Some(CgroupDir {
                        path: deepest(base, relative),
                        version: Version::V1,
                    }));
                }
            }
        }
    }
    Ok(unified
        .filter(|_| cgroup_root.join("cgroup.controllers").is_file())
        .map(|relative| CgroupDir {
            path: deepest(cgroup_root.to_owned(), relative),
            version: Version::V2,
        }))
}

/// `base/relative` if it exists, else `base` (see the module docs).
fn deepest(base: PathBuf, relative: &str) -> PathBuf {
    let joined = base.join(relative);
    if joined.is_dir() {
        joined
    } else {
        base
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::fs;

    use super::*;

    /// A fake `/proc` and `/sys/fs/cgroup` in a temporary directory.
    pub(crate) struct FakeRoots {
        pub(crate) dir: tempfile::TempDir,
    }

    impl FakeRoots {
        pub(crate) fn new() -> FakeRoots {
            let dir = tempfile::tempdir().unwrap();
            fs::create_dir_all(dir.path().join("proc/self")).unwrap();
            fs::create_dir_all(dir.path().join("cgroup")).unwrap();
            FakeRoots { dir }
        }

        pub(crate) fn proc(&self) -> PathBuf {
            self.dir.path().join("proc")
        }

        pub(crate) fn cgroup(&self) -> PathBuf {
            self.dir.path().join("cgroup")
        }

        /// Writes `text` to `relative` under the fake root, making its directories.
        pub(crate) fn write(&self, relative: &str, text: &str) {
            let path = self.dir.path().join(relative);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }

        /// A cgroup v2 host with the worker in `/app.slice/w.service`.
        pub(crate) fn v2() -> FakeRoots {
            let roots = FakeRoots::new();
            roots.write("proc/self/cgroup", "0::/app.slice/w.service\n");
            roots.write("cgroup/cgroup.controllers", "cpu memory\n");
            fs::create_dir_all(roots.cgroup().join("app.slice/w.service")).unwrap();
            roots
        }

        /// A cgroup v1 host with the worker in `/docker/abc`.
        pub(crate) fn v1() -> FakeRoots {
            let roots = FakeRoots::new();
            roots.write(
                "proc/self/cgroup",
                "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n",
            );
            fs::create_dir_all(roots.cgroup().join("cpu,cpuacct/docker/abc")).unwrap();
            fs::create_dir_all(roots.cgroup().join("memory/docker/abc")).unwrap();
            roots
        }
    }

    #[test]
    fn v2_is_found_under_the_unified_mount() {
        let roots = FakeRoots::v2();
        let found = find(&roots.proc(), &roots.cgroup(), "cpu")
            .unwrap()
            .unwrap();
        assert_eq!(found.version, Version::V2);
        assert_eq!(found.path, roots.cgroup().join("app.slice/w.service"));
    }

    #[test]
    fn v1_is_found_under_the_mount_named_by_its_controllers() {
        let roots = FakeRoots::v1();
        let cpu = find(&roots.proc(), &roots.cgroup(), "cpuacct")
            .unwrap()
            .unwrap();
        assert_eq!(cpu.version, Version::V1);
        assert_eq!(cpu.path, roots.cgroup().join("cpu,cpuacct/docker/abc"));
        let memory = find(&roots.proc(), &roots.cgroup(), "memory")
            .unwrap()
            .unwrap();
        assert_eq!(memory.path, roots.cgroup().join("memory/docker/abc"));
    }

    #[test]
    fn a_path_the_container_does_not_see_is_read_as_the_mount_root() {
        let roots = FakeRoots::new();
        roots.write("proc/self/cgroup", "0::/system.slice/docker-1.scope\n");
        roots.write("cgroup/cgroup.controllers", "cpu memory\n");
        let found = find(&roots.proc(), &roots.cgroup(), "memory")
            .unwrap()
            .unwrap();
        assert_eq!(found.path, roots.cgroup());
    }

    #[test]
    fn no_membership_file_or_no_mount_is_no_cgroup() {
        let roots = FakeRoots::new();
        assert_eq!(find(&roots.proc(), &roots.cgroup(), "cpu").unwrap(), None);
        roots.write("proc/self/cgroup", "0::/\n");
        // The unified hierarchy is not mounted where we look.
        assert_eq!(find(&roots.proc(), &roots.cgroup(), "cpu").unwrap(), None);
    }
}
