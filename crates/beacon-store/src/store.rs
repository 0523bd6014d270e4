//! The store: etcd v2's operations over the node tree, applied in log order.

use std::collections::BTreeSet;
use std::sync::Arc;

use beacon_api::{Action, ByteString, ErrorCode, EtcdError, Event, NodeExtern};
use serde::{Deserialize, Serialize};

use crate::command::{Command, KeysRequest, Method};
use crate::history::History;
use crate::lookup::{ensure_dir, lookup, lookup_mut};
use crate::node::{Kind, Node};
use crate::path;
use crate::stats::{Counters, Op, StoreStats};
use crate::watch::{Hub, WatchSink, WatcherId};

/// Expirations before 2000-01-01 are treated as permanent, as etcd does for times
/// that lost their zero value on the way through JSON.
const MIN_EXPIRE_NS: i64 = 946_684_800_000_000_000;

/// What applying one log entry produced.
// Nearly every entry is a keys request, so boxing its result would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Applied {
    /// The outcome of a keys request, sent back to the client that proposed it.
    Keys(Result<Event, EtcdError>),
    /// A clock entry was applied (and maybe expired keys).
    Synced,
    /// What the MVCC keyspace answered a v3 request (`beacon-proto`'s `V3Response`).
    V3(crate::Encoded),
    /// The outcome of an auth write: etcd's store error when the record it creates
    /// exists, or the one it changes does not.
    Auth(Result<(), EtcdError>),
}

/// etcd's v2 store. Deterministic: the same commands in the same order give the same
/// tree, indexes and events on every replica.
pub struct Store {
    /// Shared with the snapshot views taken from it (see `node`), until a write copies
    /// what it changes.
    pub(crate) root: Arc<Node>,
    /// The etcd index: bumped by every change, including each expired key.
    pub(crate) current_index: u64,
    /// Nodes with a TTL, ordered by expiration, then path (ties expire in path order).
    pub(crate) ttl_index: BTreeSet<(i64, ByteString)>,
    pub(crate) history: History,
    hub: Hub,
    pub(crate) counters: Counters,
    /// Members removed from the cluster, for good (etcd's `/0/removed_members`): their
    /// ids are never reused, and their messages are refused.
    pub(crate) removed_members: BTreeSet<u64>,
    /// Whether the cluster version was recorded (etcd's `/0/version`, written once).
    pub(crate) cluster_version_decided: bool,
    /// The v2 auth records (etcd's `/2`), shared with snapshot views until changed.
    pub(crate) auth: Arc<crate::auth::AuthState>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    /// An empty store at index 0.
    pub fn new() -> Store {
        Store {
            root: Arc::new(Node::new_dir(0, None)),
            current_index: 0,
            ttl_index: BTreeSet::new(),
            history: History::default(),
            hub: Hub::default(),
            counters: Counters::default(),
            removed_members: BTreeSet::new(),
            cluster_version_decided: false,
            auth: Arc::default(),
        }
    }

    /// Applies one committed command. Everything it needs, time included, is in `cmd`.
    pub fn apply(&mut self, cmd: &Command) -> Applied {
        match cmd {
            Command::Keys(req) => Applied::Keys(self.apply_keys(req)),
            Command::Sync { time_ns } => {
                self.delete_expired(*time_ns);
                Applied::Synced
            }
            // The state machine hands these to the MVCC keyspace; this store has no v3
            // keys, so one that reaches it changes nothing here.
            Command::V3(_) => Applied::Synced,
            Command::Auth(write) => Applied::Auth(self.apply_auth(write)),
        }
    }

    /// Records members removed by an applied membership change.
    pub fn record_removed_members(&mut self, ids: impl IntoIterator<Item = u64>) {
        self.removed_members.extend(ids);
    }

    /// Whether member `id` was removed from the cluster.
    pub fn is_member_removed(&self, id: u64) -> bool {
        self.removed_members.contains(&id)
    }

    /// The etcd index.
    pub fn current_index(&self) -> u64 {
        self.current_index
    }

    /// Whether any node has a TTL, so the leader needs to keep proposing its clock.
    pub fn has_ttl_keys(&self) -> bool {
        !self.ttl_index.is_empty()
    }

    /// How many watchers wait.
    pub fn watcher_count(&self) -> usize {
        self.hub.count()
    }

    /// The counters for `/v2/stats/store`.
    pub fn stats(&self) -> StoreStats {
        self.counters.read(self.hub.count() as u64)
    }

    /// A plain (local) read; `now_ns` only renders TTLs. The key is bytes (a Go string).
    pub fn get(
        &self,
        key: impl AsRef<[u8]>,
        recursive: bool,
        _sorted: bool,
        now_ns: i64,
    ) -> Result<Event, EtcdError> {
        // Children are kept in name order, so every listing is already `sorted`.
        let key = path::clean(key.as_ref());
        let result = lookup(&self.root, &key, self.current_index).map(|node| Event {
            action: Action::Get,
            node: Some(node.load(&key, recursive, now_ns)),
            prev_node: None,
            etcd_index: self.current_index,
            refresh: false,
        });
        self.counters.record(Op::Get, result.is_ok());
        result
    }

    /// Registers a watcher from `wait_index` (0: the next change). When the history
    /// already holds a matching event it is delivered at once and, as in etcd, the
    /// watcher is not registered (even a stream watcher). Returns the watcher's id and
    /// the etcd index at registration (the watch response's `X-Etcd-Index`).
    pub fn watch(
        &mut self,
        key: impl AsRef<[u8]>,
        recursive: bool,
        stream: bool,
        wait_index: u64,
        mut sink: Box<dyn WatchSink>,
    ) -> Result<(WatcherId, u64), EtcdError> {
        let key = path::clean(key.as_ref());
        let since_index = if wait_index == 0 {
            self.current_index + 1
        } else {
            wait_index
        };
        let id = self.hub.next_id();
        match self.history.scan(&key, recursive, since_index) {
            Err(mut e) => {
                e.index = self.current_index;
                Err(e)
            }
            Ok(Some(event)) => {
                sink.deliver(&event);
                Ok((id, self.current_index))
            }
            Ok(None) => {
                self.hub.add(id, &key, recursive, stream, since_index, sink);
                Ok((id, self.current_index))
            }
        }
    }

    /// Removes a watcher whose client left; a no-op when it is already gone.
    pub fn unwatch(&mut self, id: WatcherId) {
        self.hub.remove(id);
    }

    fn apply_keys(&mut self, r: &KeysRequest) -> Result<Event, EtcdError> {
        let now = r.time_ns;
        let compare = r.prev_index > 0 || !r.prev_value.is_empty();
        // The same dispatch as etcd's applierV2store.
        match r.method {
            Method::Post => self.create(&r.path, r.dir, &r.value, true, r.expiration_ns, now),
            Method::Put => match r.prev_exist {
                Some(true) if !compare => {
                    self.update(&r.path, &r.value, r.expiration_ns, r.refresh, now)
                }
                Some(true) => self.compare_and_swap(r, now),
                Some(false) => self.create(&r.path, r.dir, &r.value, false, r.expiration_ns, now),
                None if compare => self.compare_and_swap(r, now),
                None => self.set(&r.path, r.dir, &r.value, r.expiration_ns, r.refresh, now),
            },
            Method::Delete if compare => {
                self.compare_and_delete(&r.path, &r.prev_value, r.prev_index, now)
            }
            Method::Delete => self.delete(&r.path, r.dir, r.recursive, now),
            Method::QuorumGet => self.get(&r.path, r.recursive, r.sorted, now),
        }
    }

    fn create(
        &mut self,
        key: &[u8],
        dir: bool,
        value: &[u8],
        unique: bool,
        expire_ns: Option<i64>,
        now: i64,
    ) -> Result<Event, EtcdError> {
        let result = self.internal_create(
            key,
            dir,
            value,
            unique,
            false,
            expire_ns,
            Action::Create,
            now,
        );
        self.counters.record(Op::Create, result.is_ok());
        let event = result?;
        Ok(self.publish(event))
    }

    fn set(
        &mut self,
        key: &[u8],
        dir: bool,
        value: &[u8],
        expire_ns: Option<i64>,
        refresh: bool,
        now: i64,
    ) -> Result<Event, EtcdError> {
        let result = (|| {
            let clean = path::clean(key);
            let existing = match lookup(&self.root, &clean, self.current_index) {
                Ok(node) => Some(ByteString::from(node.value())),
                Err(e) if e.code == ErrorCode::KeyNotFound && !refresh => None,
                Err(e) => return Err(e),
            };
            // A refresh keeps the value and only moves the expiration.
            let value = match (&existing, refresh) {
                (Some(old), true) => old.clone(),
                _ => ByteString::from(value),
            };
            self.internal_create(key, dir, &value, false, true, expire_ns, Action::Set, now)
        })();
        self.counters.record(Op::Set, result.is_ok());
        let mut event = result?;
        event.refresh = refresh;
        Ok(self.publish(event))
    }

    fn update(
        &mut self,
        key: &[u8],
        value: &[u8],
        expire_ns: Option<i64>,
        refresh: bool,
        now: i64,
    ) -> Result<Event, EtcdError> {
        let result = (|| {
            let clean = path::clean(key);
            let current = self.current_index;
            if clean == "/" {
                return Err(EtcdError::new(ErrorCode::RootReadOnly, "/", current));
            }
            let next = current + 1;
            let node = lookup_mut(&mut self.root, &clean, current)?;
            if node.is_dir() && !value.is_empty() {
                return Err(EtcdError::new(ErrorCode::NotFile, clean, current));
            }
            let prev = node.repr(&clean, false, now);
            let value = if refresh {
                ByteString::from(node.value())
            } else {
                ByteString::from(value)
            };
            // Like etcd, updating a directory's TTL leaves its modifiedIndex alone,
            // while the event still reports the new index.
            if let Kind::File(v) = &mut node.kind {
                *v = value.clone();
                node.modified_index = next;
            }
            let old_expire = node.expire_ns;
            node.expire_ns = expire_ns;
            let (expiration, ttl) = node.expiration_and_ttl(now);
            let event_node = NodeExtern {
                key: clean.clone(),
                value: (!node.is_dir()).then_some(value),
                dir: node.is_dir(),
                expiration,
                ttl,
                modified_index: next,
                created_index: node.created_index,
                nodes: Default::default(),
            };
            self.retime(&clean, old_expire, expire_ns);
            self.current_index = next;
            Ok(Event {
                action: Action::Update,
                node: Some(event_node),
                prev_node: Some(prev),
                etcd_index: next,
                refresh,
            })
        })();
        self.counters.record(Op::Update, result.is_ok());
        Ok(self.publish(result?))
    }

    fn compare_and_swap(&mut self, r: &KeysRequest, now: i64) -> Result<Event, EtcdError> {
        let result = (|| {
            let clean = path::clean(&r.path);
            let current = self.current_index;
            if clean == "/" {
                return Err(EtcdError::new(ErrorCode::RootReadOnly, "/", current));
            }
            let node = lookup_mut(&mut self.root, &clean, current)?;
            if node.is_dir() {
                return Err(EtcdError::new(ErrorCode::NotFile, clean, current));
            }
            compare(node, &r.prev_value, r.prev_index, current)?;
            let next = current + 1;
            let prev = node.repr(&clean, false, now);
            let value = if r.refresh {
                ByteString::from(node.value())
            } else {
                r.value.clone()
            };
            node.kind = Kind::File(value.clone());
            node.modified_index = next;
            let old_expire = node.expire_ns;
            node.expire_ns = r.expiration_ns;
            let (expiration, ttl) = node.expiration_and_ttl(now);
            let event_node = NodeExtern {
                key: clean.clone(),
                value: Some(value),
                expiration,
                ttl,
                modified_index: next,
                created_index: node.created_index,
                ..NodeExtern::default()
            };
            self.retime(&clean, old_expire, r.expiration_ns);
            self.current_index = next;
            Ok(Event {
                action: Action::CompareAndSwap,
                node: Some(event_node),
                prev_node: Some(prev),
                etcd_index: next,
                refresh: r.refresh,
            })
        })();
        self.counters.record(Op::CompareAndSwap, result.is_ok());
        Ok(self.publish(result?))
    }

    fn delete(
        &mut self,
        key: &[u8],
        dir: bool,
        recursive: bool,
        now: i64,
    ) -> Result<Event, EtcdError> {
        let result = (|| {
            let clean = path::clean(key);
            let current = self.current_index;
            if clean == "/" {
                return Err(EtcdError::new(ErrorCode::RootReadOnly, "/", current));
            }
            let dir = dir || recursive;
            let node = lookup(&self.root, &clean, current)?;
            if let Some(children) = node.children() {
                if !dir {
                    return Err(EtcdError::new(ErrorCode::NotFile, clean, current));
                }
                if !children.is_empty() && !recursive {
                    return Err(EtcdError::new(ErrorCode::DirNotEmpty, clean, current));
                }
            }
            let event = removal_event(Action::Delete, &clean, node, current + 1, now);
            Ok((clean, event))
        })();
        self.counters.record(Op::Delete, result.is_ok());
        let (clean, event) = result?;
        Ok(self.remove_and_publish(&clean, event))
    }

    fn compare_and_delete(
        &mut self,
        key: &[u8],
        prev_value: &[u8],
        prev_index: u64,
        now: i64,
    ) -> Result<Event, EtcdError> {
        let result = (|| {
            // etcd has no read-only check here: "/" fails below as a directory.
            let clean = path::clean(key);
            let current = self.current_index;
            let node = lookup(&self.root, &clean, current)?;
            if node.is_dir() {
                return Err(EtcdError::new(ErrorCode::NotFile, clean, current));
            }
            compare(node, prev_value, prev_index, current)?;
            let event = removal_event(Action::CompareAndDelete, &clean, node, current + 1, now);
            Ok((clean, event))
        })();
        self.counters.record(Op::CompareAndDelete, result.is_ok());
        let (clean, event) = result?;
        Ok(self.remove_and_publish(&clean, event))
    }

    /// Expires, in expiration order, every node whose time is at or before `cutoff_ns`.
    fn delete_expired(&mut self, cutoff_ns: i64) {
        while let Some((at, key)) = self.ttl_index.first().cloned() {
            if at > cutoff_ns {
                break;
            }
            let node = lookup(&self.root, &key, self.current_index)
                .unwrap_or_else(|e| panic!("TTL index names {key}, which the tree lacks: {e}"));
            let event = removal_event(
                Action::Expire,
                &key,
                node,
                self.current_index + 1,
                cutoff_ns,
            );
            self.counters.record_expired();
            self.remove_and_publish(&key, event);
        }
    }

    /// etcd's `internalCreate`: makes missing parent directories, replaces a file
    /// when `replace`, and bumps the index.
    #[allow(clippy::too_many_arguments)]
    fn internal_create(
        &mut self,
        key: &[u8],
        dir: bool,
        value: &[u8],
        unique: bool,
        replace: bool,
        expire_ns: Option<i64>,
        action: Action,
        now: i64,
    ) -> Result<Event, EtcdError> {
        let current = self.current_index;
        let next = current + 1;
        let clean = if unique {
            // In-order keys are named by the index that creates them, zero-padded to 20.
            let mut unique = key.to_vec();
            unique.extend_from_slice(format!("/{next:020}").as_bytes());
            path::clean(&unique)
        } else {
            path::clean(key)
        };
        if clean == "/" {
            return Err(EtcdError::new(ErrorCode::RootReadOnly, "/", current));
        }
        let expire_ns = expire_ns.filter(|at| *at >= MIN_EXPIRE_NS);
        let (dir_path, name) = path::split(&clean);
        let children = ensure_dir(&mut self.root, dir_path, next, current)?;
        let node = if dir {
            Node::new_dir(next, expire_ns)
        } else {
            Node::new_file(value.into(), next, expire_ns)
        };
        let (expiration, ttl) = node.expiration_and_ttl(now);
        let mut prev_node = None;
        let mut replaced_expire = None;
        match children.get_mut(name) {
            Some(existing) => {
                if !replace {
                    return Err(EtcdError::new(ErrorCode::NodeExist, clean, current));
                }
                if existing.is_dir() {
                    return Err(EtcdError::new(ErrorCode::NotFile, clean, current));
                }
                prev_node = Some(existing.repr(&clean, false, now));
                replaced_expire = existing.expire_ns;
                // The file's own allocation is reused unless a snapshot view shares it.
                match Arc::get_mut(existing) {
                    Some(unshared) => *unshared = node,
                    None => *existing = Arc::new(node),
                }
            }
            None => {
                children.insert(name.into(), Arc::new(node));
            }
        }
        self.retime(&clean, replaced_expire, expire_ns);
        self.current_index = next;
        Ok(Event {
            action,
            node: Some(NodeExtern {
                key: clean,
                value: (!dir).then(|| value.into()),
                dir,
                expiration,
                ttl,
                modified_index: next,
                created_index: next,
                nodes: Default::default(),
            }),
            prev_node,
            etcd_index: next,
            refresh: false,
        })
    }

    /// Moves a node's entry in the TTL index from `old` to `new` expiration.
    fn retime(&mut self, key: &[u8], old: Option<i64>, new: Option<i64>) {
        if let Some(at) = old {
            self.ttl_index.remove(&(at, key.into()));
        }
        if let Some(at) = new {
            self.ttl_index.insert((at, key.into()));
        }
    }

    /// Detaches the node at `key`, wakes the watchers of everything under it (children
    /// first, as etcd's `node.Remove` calls back), then publishes the event.
    fn remove_and_publish(&mut self, key: &[u8], event: Event) -> Event {
        let shown = String::from_utf8_lossy(key);
        let (dir_path, name) = path::split(key);
        let parent = lookup_mut(&mut self.root, dir_path, self.current_index)
            .unwrap_or_else(|e| panic!("parent of {shown} vanished: {e}"));
        let Kind::Dir(children) = &mut parent.kind else {
            panic!("parent of {shown} is not a directory");
        };
        let removed = children
            .remove(name)
            .unwrap_or_else(|| panic!("{shown} vanished"));
        self.current_index = event.etcd_index;
        let event = Arc::new(event);
        let (ttl_index, hub) = (&mut self.ttl_index, &mut self.hub);
        removed.walk_post_order(key, &mut |p, n| {
            hub.notify_watchers(&event, p, true);
            if let Some(at) = n.expire_ns {
                ttl_index.remove(&(at, p.into()));
            }
        });
        self.history.add(Arc::clone(&event));
        self.hub.notify(&event);
        Arc::unwrap_or_clone(event)
    }

    /// Records the event in the history and wakes its watchers; a refresh is recorded
    /// but wakes nobody.
    fn publish(&mut self, event: Event) -> Event {
        let event = Arc::new(event);
        self.history.add(Arc::clone(&event));
        if !event.refresh {
            self.hub.notify(&event);
        }
        Arc::unwrap_or_clone(event)
    }

    pub(crate) fn clear_watchers(&mut self) {
        self.hub.clear();
    }

    pub(crate) fn replace_state(&mut self, root: Node, current_index: u64, history: History) {
        let mut ttl_index = BTreeSet::new();
        root.walk_post_order(b"/", &mut |p, n| {
            if let Some(at) = n.expire_ns {
                ttl_index.insert((at, p.into()));
            }
        });
        self.root = Arc::new(root);
        self.current_index = current_index;
        self.history = history;
        self.ttl_index = ttl_index;
    }
}

/// The event of a node's removal at index `next`: the node shown bare (key, `dir`,
/// indexes), the removed node as `prevNode`, as etcd's delete, compareAndDelete and
/// expire all report it.
fn removal_event(action: Action, key: &[u8], node: &Node, next: u64, now: i64) -> Event {
    Event {
        action,
        node: Some(NodeExtern {
            key: key.into(),
            dir: node.is_dir(),
            modified_index: next,
            created_index: node.created_index,
            ..NodeExtern::default()
        }),
        prev_node: Some(node.repr(key, false, now)),
        etcd_index: next,
        refresh: false,
    }
}

/// etcd's `node.Compare` with its failure causes. Values are compared as bytes, and the
/// cause shows them as bytes too (`[prev != value]`), as etcd's Go strings do.
fn compare(node: &Node, prev_value: &[u8], prev_index: u64, index: u64) -> Result<(), EtcdError> {
    let index_ok = prev_index == 0 || node.modified_index == prev_index;
    let value_ok = prev_value.is_empty() || node.value() == prev_value;
    let values = || [b"[", prev_value, b" != ", node.value(), b"]"].concat();
    let indexes = format!("[{} != {}]", prev_index, node.modified_index);
    let cause = match (value_ok, index_ok) {
        (true, true) => return Ok(()),
        (true, false) => indexes.into_bytes(),
        (false, true) => values(),
        (false, false) => [values(), b" ".to_vec(), indexes.into_bytes()].concat(),
    };
    Err(EtcdError::new(ErrorCode::TestFailed, cause, index))
}
