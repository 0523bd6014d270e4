//! The simulated file tree: bytes durable once a file is synced, names (create, rename,
//! remove) once a directory is.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use beacon_raft::disk::{DiskFuture, StreamedFile};

use super::{injected, not_found, SimDisk};

pub(super) struct Inode {
    pub(super) data: Vec<u8>,
    pub(super) synced: Vec<u8>,
}

#[derive(Debug, Clone)]
pub(super) enum NameOp {
    Link(PathBuf, u64),
    Unlink(PathBuf),
    Rename(PathBuf, PathBuf),
}

pub(super) fn apply_name(names: &mut BTreeMap<PathBuf, u64>, op: &NameOp) {
    match op {
        NameOp::Link(p, ino) => {
            names.insert(p.clone(), *ino);
        }
        NameOp::Unlink(p) => {
            names.remove(p);
        }
        NameOp::Rename(from, to) => {
            if let Some(ino) = names.remove(from) {
                names.insert(to.clone(), ino);
            }
        }
    }
}

#[derive(Default)]
pub(super) struct Files {
    pub(super) dirs: BTreeSet<PathBuf>,
    pub(super) inodes: BTreeMap<u64, Inode>,
    pub(super) next_inode: u64,
    /// The names as the running host sees them.
    pub(super) names: BTreeMap<PathBuf, u64>,
    /// The names a crash keeps for sure.
    pub(super) durable_names: BTreeMap<PathBuf, u64>,
    /// Name changes since the last directory sync, in order.
    pub(super) pending: Vec<NameOp>,
}

impl Files {
    /// The inode at `path`, emptied (a create truncates), or a new one linked there.
    pub(super) fn create(&mut self, path: &Path) -> io::Result<u64> {
        let parent = path.parent().unwrap_or(Path::new(""));
        if !self.dirs.contains(parent) {
            return Err(not_found(parent));
        }
        if let Some(ino) = self.names.get(path) {
            self.inodes.get_mut(ino).expect("named inode").data.clear();
            return Ok(*ino);
        }
        let ino = self.next_inode;
        self.next_inode += 1;
        self.inodes.insert(
            ino,
            Inode {
                data: Vec::new(),
                synced: Vec::new(),
            },
        );
        self.names.insert(path.to_owned(), ino);
        self.pending.push(NameOp::Link(path.to_owned(), ino));
        Ok(ino)
    }
}

/// A file being streamed into.
pub(super) struct SimFile {
    pub(super) disk: SimDisk,
    pub(super) ino: u64,
}

impl StreamedFile for SimFile {
    fn write<'a>(&'a mut self, chunk: &'a [u8]) -> DiskFuture<'a, io::Result<()>> {
        let mut s = self.disk.lock();
        let result = if s.file_write_fails(None) {
            Err(injected("writing a file"))
        } else {
            match s.files.inodes.get_mut(&self.ino) {
                Some(inode) => {
                    inode.data.extend_from_slice(chunk);
                    Ok(())
                }
                None => Err(io::Error::other("the simulated host crashed: file is gone")),
            }
        };
        Box::pin(std::future::ready(result))
    }

    fn flush(&mut self) -> DiskFuture<'_, io::Result<()>> {
        Box::pin(std::future::ready(Ok(())))
    }
}
