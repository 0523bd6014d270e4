//! etcd's alarms, which the log raises and clears so every replica holds the same set:
//! `NOSPACE` (a member found the keyspace over its space quota) and `CORRUPT`. While
//! one is raised the keyspace refuses what it forbids, at apply time as etcd's capped
//! and corrupt appliers do, so a write proposed before the alarm and applied after it is
//! refused like the ones that follow.

use std::collections::BTreeSet;

use beacon_proto::etcdserverpb::alarm_request::AlarmAction;
use beacon_proto::etcdserverpb::request_op::Request as Op;
use beacon_proto::etcdserverpb::{AlarmMember, AlarmRequest, AlarmResponse, AlarmType, TxnRequest};

use crate::store::Mvcc;
use crate::MvccError;

/// The raised alarms: (member id, `AlarmType` number), sorted.
pub type Alarms = BTreeSet<(u64, i32)>;

impl Mvcc {
    /// Raises, clears or lists alarms (etcd's `Alarm` call): a raise or clear answers
    /// with the alarm it was about (nothing when clearing one not raised), a listing
    /// with every alarm raised.
    pub fn alarm(&mut self, req: &AlarmRequest) -> AlarmResponse {
        let member = |alarm: (u64, i32)| AlarmMember {
            member_id: alarm.0,
            alarm: alarm.1,
        };
        let this = (req.member_id, req.alarm);
        let alarms = match AlarmAction::try_from(req.action) {
            Ok(AlarmAction::Get) => self.alarms.iter().copied().map(member).collect(),
            // Raising NONE raises nothing, as in etcd.
            Ok(AlarmAction::Activate) if req.alarm == AlarmType::None as i32 => Vec::new(),
            Ok(AlarmAction::Activate) => {
                if self.alarms.insert(this) {
                    self.alarms_changed = true;
                }
                vec![member(this)]
            }
            Ok(AlarmAction::Deactivate) => {
                if self.alarms.remove(&this) {
                    self.alarms_changed = true;
                    vec![member(this)]
                } else {
                    Vec::new()
                }
            }
            Err(_) => Vec::new(),
        };
        AlarmResponse {
            header: None,
            alarms,
        }
    }

    /// The alarms raised, sorted.
    pub fn alarms(&self) -> &Alarms {
        &self.alarms
    }

    fn raised(&self, alarm: AlarmType) -> bool {
        self.alarms.iter().any(|(_, a)| *a == alarm as i32)
    }

    /// etcd's capped applier: with `NOSPACE` raised, nothing that takes space (a put, a
    /// transaction with a put in either branch, a lease grant); with `CORRUPT`, no write.
    pub(crate) fn check_alarms(&self, write: Write<'_>) -> Result<(), MvccError> {
        if self.alarms.is_empty() {
            return Ok(());
        }
        if self.raised(AlarmType::Corrupt) && !matches!(write, Write::Other) {
            return Err(MvccError::Corrupt);
        }
        let takes_space = match write {
            Write::Put | Write::LeaseGrant => true,
            Write::Txn(txn) => has_put(txn),
            Write::Delete | Write::Compact | Write::Other => false,
        };
        if takes_space && self.raised(AlarmType::Nospace) {
            return Err(MvccError::NoSpace);
        }
        Ok(())
    }
}

/// What an applied request writes, as the alarms judge it.
pub(crate) enum Write<'a> {
    Put,
    Delete,
    Txn(&'a TxnRequest),
    Compact,
    LeaseGrant,
    /// Reads, lease revocations and renewals: never refused by an alarm.
    Other,
}

/// Whether `txn` puts anything in either branch, nested transactions included.
fn has_put(txn: &TxnRequest) -> bool {
    txn.success
        .iter()
        .chain(&txn.failure)
        .any(|op| match &op.request {
            Some(Op::RequestPut(_)) => true,
            Some(Op::RequestTxn(inner)) => has_put(inner),
            _ => false,
        })
}
