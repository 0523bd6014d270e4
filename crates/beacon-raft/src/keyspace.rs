//! The v3 keyspace (`beacon-mvcc`) on the node's disk: its values in the log database's
//! `kv` table, keyed by revision, its leases in `lease`, and its revisions and applied
//! index in `meta`, all written in one batch per applied batch of entries, by the log's
//! writer (the state machine hands them over and applies on); and its part of a Raft
//! snapshot.
//!
//! Why the log database: one fjall journal means a v3 batch is ordered with the log's
//! own writes, so a log purge that survived a crash was preceded by the v3 state it
//! relied on. The applied index stored with the values is what lets a restart skip the
//! v3 commands it already holds instead of replaying the log into a fresh keyspace.

use std::io;
use std::sync::{Arc, RwLock};

use beacon_mvcc::{
    lease_key, parse_lease_key, parse_revision_key, revision_key, Changes, LeaseRecord, Mvcc,
    StorageError, Values,
};
use beacon_proto::mvccpb::KeyValue;
use prost::Message;
use serde::{Deserialize, Serialize};

use crate::disk::{Change, DbError, Table, TableView};
use crate::log_db::{Handles, LogDb};
use crate::log_writer::{LogWriter, Rows};

/// The v3 keyspace, shared between the state machine (applies, under the write lock)
/// and the gRPC server (serializable reads).
pub type SharedMvcc = Arc<RwLock<Mvcc>>;

/// The `meta` key of the keyspace's [`State`].
const KEY_STATE: &[u8] = b"v3_state";

/// The `meta` key of the auth state (`beacon_auth::AuthState`, JSON): written only by
/// a batch that changed it, where the state is written with every batch.
const KEY_AUTH: &[u8] = b"v3_auth";

/// What the keyspace records beside its values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The keyspace's current revision (1 when empty).
    pub current: i64,
    /// Its compacted revision (-1 before any compaction).
    pub compacted: i64,
    /// The index of the last log entry whose changes the values hold.
    pub applied_index: u64,
    /// The alarms raised: (member id, `AlarmType` number). Left out when none, so a
    /// state written before alarms existed reads the same.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alarms: Vec<(u64, i32)>,
    /// Users, roles and whether auth is on: in a snapshot's state only (on disk they
    /// are under their own key); left out when never used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<beacon_auth::AuthState>,
}

impl State {
    fn empty() -> State {
        State {
            current: 1,
            compacted: -1,
            applied_index: 0,
            alarms: Vec::new(),
            auth: None,
        }
    }
}

/// The keyspace's values in the log database.
struct DiskValues {
    db: Arc<LogDb>,
}

fn storage(e: impl std::fmt::Display) -> StorageError {
    StorageError(e.to_string())
}

impl Values for DiskValues {
    fn get(&self, rev: beacon_mvcc::Revision) -> Result<Option<KeyValue>, StorageError> {
        let handles = self.db.handles_now().map_err(storage)?;
        let Some(bytes) = handles
            .get(Table::Kv, &revision_key(rev))
            .map_err(storage)?
        else {
            return Ok(None);
        };
        KeyValue::decode(bytes.as_slice())
            .map(Some)
            .map_err(storage)
    }

    fn scan(
        &self,
        from: beacon_mvcc::Revision,
        to: beacon_mvcc::Revision,
    ) -> Result<Vec<(beacon_mvcc::Revision, KeyValue)>, StorageError> {
        let handles = self.db.handles_now().map_err(storage)?;
        let (from, to) = (revision_key(from), revision_key(to));
        let found: Vec<_> = handles
            .range(Table::Kv, &from, &to)
            .collect::<Result<_, DbError>>()
            .map_err(storage)?;
        found
            .into_iter()
            .map(|(key, value)| {
                let rev = parse_revision_key(&key)
                    .ok_or_else(|| storage(format!("a v3 value under a bad key {key:?}")))?;
                Ok((rev, KeyValue::decode(value.as_slice()).map_err(storage)?))
            })
            .collect()
    }

    fn commit(&self, changes: &Changes) -> Result<(), StorageError> {
        let handles = self.db.handles_now().map_err(storage)?;
        let result = write_changes(&handles, changes);
        self.db.note(V3_WRITE, result.as_ref().map(|_| ()));
        result.map_err(storage)
    }
}

/// What a failed write of the keyspace is called in the log.
const V3_WRITE: &str = "a v3 keyspace write";

/// Encodes one applied batch's `changes` (values, leases, state) as the rows to write
/// in one atomic write.
fn rows(changes: &Changes) -> io::Result<Rows> {
    let mut rows: Rows = Vec::with_capacity(changes.writes.len() + changes.leases.len() + 1);
    rows.extend(changes.writes.iter().map(|(rev, kv)| {
        let value = kv.as_ref().map(Message::encode_to_vec);
        (Table::Kv, revision_key(*rev).to_vec(), value)
    }));
    rows.extend(changes.leases.iter().map(|(id, rec)| {
        let value = rec.as_ref().map(|r| LeaseRecord::encode(r).to_vec());
        (Table::Lease, lease_key(*id).to_vec(), value)
    }));
    let state = serde_json::to_vec(&State {
        current: changes.current,
        compacted: changes.compacted,
        applied_index: changes.applied_index,
        alarms: changes.alarms.clone(),
        auth: None,
    })
    .map_err(io::Error::other)?;
    rows.push((Table::Meta, KEY_STATE.to_vec(), Some(state)));
    if let Some(auth) = &changes.auth {
        let auth = serde_json::to_vec(auth).map_err(io::Error::other)?;
        rows.push((Table::Meta, KEY_AUTH.to_vec(), Some(auth)));
    }
    Ok(rows)
}

/// Writes one applied batch's `changes` in one atomic write, now.
fn write_changes(handles: &Handles, changes: &Changes) -> Result<(), DbError> {
    let rows = rows(changes)?;
    let batch: Vec<Change<'_>> = rows
        .iter()
        .map(|(table, key, value)| Change::set(*table, key, value.as_deref()))
        .collect();
    handles.commit(&batch)
}

/// Hands one applied batch's `changes` to the log's writer (`log_writer`), which
/// writes them with its next round (retrying a failed write over a re-opened database,
/// as for the log's own) and then calls `done`. Reads see the changes in memory until
/// then (`Mvcc::take_changes`).
pub fn write_later(
    writer: &LogWriter,
    changes: &Changes,
    done: impl FnOnce(Result<(), String>) + Send + 'static,
) -> io::Result<()> {
    writer.write_keyspace_later(rows(changes)?, done);
    Ok(())
}

fn read_state(db: &LogDb) -> io::Result<State> {
    let handles = db.handles_now()?;
    match handles
        .get(Table::Meta, KEY_STATE)
        .map_err(io::Error::other)?
    {
        None => Ok(State::empty()),
        Some(bytes) => serde_json::from_slice(&bytes).map_err(io::Error::other),
    }
}

fn read_auth(db: &LogDb) -> io::Result<Option<beacon_auth::AuthState>> {
    let handles = db.handles_now()?;
    let found = handles
        .get(Table::Meta, KEY_AUTH)
        .map_err(io::Error::other)?;
    found
        .map(|bytes| serde_json::from_slice(&bytes).map_err(io::Error::other))
        .transpose()
}

/// Opens the keyspace the log database holds (empty in a new one): reads its state and
/// rebuilds the key index from every stored value. Returns it with its applied index.
pub fn open(db: &Arc<LogDb>) -> io::Result<(Mvcc, u64)> {
    let state = read_state(db)?;
    let handles = db.handles_now()?;
    let leases = decode_leases(handles.view(Table::Lease)).map_err(io::Error::other)?;
    let view = handles.view(Table::Kv);
    drop(handles);
    let mut mvcc = Mvcc::open(
        Arc::new(DiskValues { db: Arc::clone(db) }),
        decode_view(view),
        leases,
        state.current,
        state.compacted,
    )
    .map_err(io::Error::other)?;
    mvcc.restore_alarms(state.alarms.iter().copied());
    if let Some(auth) = read_auth(db)? {
        mvcc.restore_auth(auth);
    }
    Ok((mvcc, state.applied_index))
}

fn decode_leases(view: TableView) -> Result<Vec<LeaseRecord>, String> {
    view.map(|item| {
        let (key, value) = item.map_err(|e| e.to_string())?;
        parse_lease_key(&key)
            .and_then(|id| LeaseRecord::decode(id, &value))
            .ok_or_else(|| format!("a lease record that does not decode under {key:?}"))
    })
    .collect()
}

fn decode_view(
    view: TableView,
) -> impl Iterator<Item = Result<(beacon_mvcc::Revision, KeyValue), StorageError>> {
    view.map(|item| {
        let (key, value) = item.map_err(storage)?;
        let rev = parse_revision_key(&key)
            .ok_or_else(|| storage(format!("a v3 value under a bad key {key:?}")))?;
        let kv = KeyValue::decode(value.as_slice()).map_err(storage)?;
        Ok((rev, kv))
    })
}

/// The keyspace's part of a snapshot: its state and a view of every value, taken
/// between two applies so that both are as of the snapshot's last entry.
pub struct Section {
    pub state: State,
    /// Every lease, as stored.
    pub leases: TableView,
    pub values: TableView,
}

impl Section {
    /// Takes the section of `mvcc`, whose last commit was at `applied_index`.
    pub fn take(db: &LogDb, mvcc: &Mvcc, applied_index: u64) -> io::Result<Section> {
        let handles = db.handles_now()?;
        Ok(Section {
            state: State {
                current: mvcc.current_revision(),
                compacted: mvcc.compact_revision(),
                applied_index,
                alarms: mvcc.alarms().iter().copied().collect(),
                auth: Some(mvcc.auth().state().clone()).filter(|a| !a.is_initial()),
            },
            leases: handles.view(Table::Lease),
            values: handles.view(Table::Kv),
        })
    }

    /// Appends the section to `out`: the state as JSON, the leases (their stored keys
    /// and records, one chunk), then each value's key and value, each chunk with its
    /// length (u32, big-endian) before it.
    pub fn write(self, out: &mut Vec<u8>) -> io::Result<()> {
        let state = serde_json::to_vec(&self.state).map_err(io::Error::other)?;
        put_chunk(out, &state)?;
        let mut leases = Vec::new();
        for item in self.leases {
            let (key, value) = item.map_err(io::Error::other)?;
            leases.extend_from_slice(&key);
            leases.extend_from_slice(&value);
        }
        put_chunk(out, &leases)?;
        for item in self.values {
            let (key, value) = item.map_err(io::Error::other)?;
            put_chunk(out, &key)?;
            put_chunk(out, &value)?;
        }
        Ok(())
    }
}

fn put_chunk(out: &mut Vec<u8>, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| io::Error::other("a v3 value over 4 GiB"))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

fn take_chunk<'a>(bytes: &mut &'a [u8]) -> Result<&'a [u8], String> {
    let len: [u8; 4] = bytes
        .get(..4)
        .ok_or("a v3 section cut short")?
        .try_into()
        .map_err(|_| "a v3 section cut short")?;
    let len = u32::from_be_bytes(len) as usize;
    let chunk = bytes.get(4..4 + len).ok_or("a v3 section cut short")?;
    *bytes = &bytes[4 + len..];
    Ok(chunk)
}

/// A section read back: checked whole (every key a revision, every value a `KeyValue`)
/// before anything is written.
pub struct Decoded<'a> {
    state: State,
    leases: Vec<LeaseRecord>,
    values: Vec<(&'a [u8], &'a [u8])>,
}

/// A lease's stored key and record, as a section's lease chunk holds them.
const LEASE_ENTRY_BYTES: usize = 8 + 16;

/// Decodes a section written by [`Section::write`].
pub fn decode(mut bytes: &[u8]) -> Result<Decoded<'_>, String> {
    let state: State =
        serde_json::from_slice(take_chunk(&mut bytes)?).map_err(|e| e.to_string())?;
    let lease_chunk = take_chunk(&mut bytes)?;
    if lease_chunk.len() % LEASE_ENTRY_BYTES != 0 {
        return Err("a v3 section's leases cut short".into());
    }
    let leases = lease_chunk
        .chunks(LEASE_ENTRY_BYTES)
        .map(|entry| {
            parse_lease_key(&entry[..8])
                .and_then(|id| LeaseRecord::decode(id, &entry[8..]))
                .ok_or_else(|| "a v3 section's lease does not decode".to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut values = Vec::new();
    while !bytes.is_empty() {
        let key = take_chunk(&mut bytes)?;
        let value = take_chunk(&mut bytes)?;
        let rev = parse_revision_key(key).ok_or("a v3 value under a bad key")?;
        let kv = KeyValue::decode(value).map_err(|e| e.to_string())?;
        if rev.main > state.current || (kv.version != 0 && kv.mod_revision != rev.main) {
            return Err(format!("a v3 value at {rev:?} does not fit the section"));
        }
        values.push((key, value));
    }
    Ok(Decoded {
        state,
        leases,
        values,
    })
}

/// Replaces the keyspace in `db` with `section`'s and re-opens `mvcc` over it.
pub fn install(db: &Arc<LogDb>, mvcc: &mut Mvcc, section: &Decoded<'_>) -> io::Result<()> {
    let handles = db.handles_now()?;
    let keys_of = |table| {
        handles
            .view(table)
            .map(|item| item.map(|(k, _)| k))
            .collect::<Result<Vec<Vec<u8>>, DbError>>()
            .map_err(io::Error::other)
    };
    let (old, old_leases) = (keys_of(Table::Kv)?, keys_of(Table::Lease)?);
    // The auth state goes under its own key, as a batch writes it.
    let auth = section
        .state
        .auth
        .as_ref()
        .map(|a| serde_json::to_vec(a).map_err(io::Error::other))
        .transpose()?;
    let state = serde_json::to_vec(&State {
        auth: None,
        ..section.state.clone()
    })
    .map_err(io::Error::other)?;
    let leases: Vec<([u8; 8], [u8; 16])> = section
        .leases
        .iter()
        .map(|rec| (lease_key(rec.id), rec.encode()))
        .collect();
    let mut batch: Vec<Change<'_>> = old
        .iter()
        .map(|k| Change::Remove(Table::Kv, k))
        .chain(old_leases.iter().map(|k| Change::Remove(Table::Lease, k)))
        .chain(
            section
                .values
                .iter()
                .map(|(k, v)| Change::Insert(Table::Kv, k, v)),
        )
        .chain(
            leases
                .iter()
                .map(|(k, v)| Change::Insert(Table::Lease, k, v)),
        )
        .collect();
    batch.push(Change::Insert(Table::Meta, KEY_STATE, &state));
    batch.push(match &auth {
        Some(auth) => Change::Insert(Table::Meta, KEY_AUTH, auth),
        None => Change::Remove(Table::Meta, KEY_AUTH),
    });
    handles.commit(&batch).map_err(io::Error::other)?;
    drop(handles);
    *mvcc = open(db)?.0;
    Ok(())
}

/// The first bytes of a snapshot with a v3 section; one without them (written before
/// the v3 keyspace existed) is the v2 store's JSON alone, which starts with `{`.
const SNAPSHOT_MAGIC: &[u8; 8] = b"beacon3\n";

/// A snapshot's bytes: the v2 store's JSON, then the v3 section.
pub fn join(v2: Vec<u8>, section: Section) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(v2.len() + 64);
    put_v2(&mut out, &v2);
    drop(v2);
    section.write(&mut out)?;
    Ok(out)
}

fn put_v2(out: &mut Vec<u8>, v2: &[u8]) {
    out.extend_from_slice(SNAPSHOT_MAGIC);
    out.extend_from_slice(&(v2.len() as u64).to_be_bytes());
    out.extend_from_slice(v2);
}

/// [`join`] of a section already encoded (a restore's).
pub fn join_encoded(v2: &[u8], v3: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v2.len() + v3.len() + 16);
    put_v2(&mut out, v2);
    out.extend_from_slice(v3);
    out
}

/// An encoded section with its applied index set to `applied_index` (a restore's
/// first snapshot of a new log) and its alarms cleared (they name the old members);
/// everything else as it was.
pub fn rebase(mut v3: &[u8], applied_index: u64) -> Result<Vec<u8>, String> {
    let mut state: State =
        serde_json::from_slice(take_chunk(&mut v3)?).map_err(|e| e.to_string())?;
    state.applied_index = applied_index;
    state.alarms.clear();
    let state = serde_json::to_vec(&state).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(state.len() + v3.len() + 4);
    put_chunk(&mut out, &state).map_err(|e| e.to_string())?;
    out.extend_from_slice(v3);
    Ok(out)
}

/// The encoded section of an empty keyspace at `applied_index`.
pub fn rebase_empty(applied_index: u64) -> Vec<u8> {
    let state = State {
        applied_index,
        ..State::empty()
    };
    let mut out = Vec::new();
    // A state and an empty lease chunk are far under a chunk's 4 GiB.
    let state = serde_json::to_vec(&state).expect("a keyspace state serializes");
    put_chunk(&mut out, &state).expect("a small chunk");
    put_chunk(&mut out, &[]).expect("a small chunk");
    out
}

/// A snapshot's v2 JSON and v3 section (`None` in a snapshot from before v3).
pub fn split(data: &[u8]) -> Result<(&[u8], Option<&[u8]>), String> {
    let Some(rest) = data.strip_prefix(SNAPSHOT_MAGIC) else {
        return Ok((data, None));
    };
    let len: [u8; 8] = rest
        .get(..8)
        .ok_or("a snapshot cut short")?
        .try_into()
        .map_err(|_| "a snapshot cut short")?;
    let end = usize::try_from(u64::from_be_bytes(len))
        .ok()
        .and_then(|len| len.checked_add(8))
        .filter(|&end| end <= rest.len())
        .ok_or("a snapshot cut short")?;
    Ok((&rest[8..end], Some(&rest[end..])))
}

impl Decoded<'_> {
    /// The section of an empty keyspace.
    pub fn empty() -> Decoded<'static> {
        Decoded {
            state: State::empty(),
            leases: Vec::new(),
            values: Vec::new(),
        }
    }

    /// The applied index the section records.
    pub fn applied_index(&self) -> u64 {
        self.state.applied_index
    }

    /// The keyspace's current revision.
    pub fn revision(&self) -> i64 {
        self.state.current
    }

    /// Its stored records: every value (each revision of each key) and every lease.
    pub fn records(&self) -> u64 {
        (self.values.len() + self.leases.len()) as u64
    }
}
