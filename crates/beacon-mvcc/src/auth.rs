//! Auth in the keyspace: the Auth service's log entries applied to the member's
//! [`AuthStore`], and etcd 3.4's checks of every request applied while auth is on
//! (`etcdserver/apply_auth.go`), with the user and auth revision the server put in the
//! entry. The checks of reads served without the log are here too, for the server.
//!
//! One difference from etcd: a transaction nested in a transaction has its operations
//! checked as well (etcd 3.4 skips them, so a nested Put escapes its permissions).

use beacon_auth::{perm_of, Access, AuthError, AuthState, AuthStore, Caller};
use beacon_proto::authpb::Permission;
use beacon_proto::beaconpb::{v3_request, v3_response, V3Request};
use beacon_proto::etcdserverpb::request_op::Request as Op;
use beacon_proto::etcdserverpb::{
    AuthDisableResponse, AuthEnableResponse, AuthRoleAddResponse, AuthRoleDeleteResponse,
    AuthRoleGetResponse, AuthRoleGrantPermissionResponse, AuthRoleListResponse,
    AuthRoleRevokePermissionResponse, AuthUserAddResponse, AuthUserChangePasswordResponse,
    AuthUserDeleteResponse, AuthUserGetResponse, AuthUserGrantRoleResponse, AuthUserListResponse,
    AuthUserRevokeRoleResponse, AuthenticateResponse, PutRequest, RangeRequest, RequestOp,
    TxnRequest,
};

use crate::store::{header, Mvcc};
use crate::MvccError;

/// The caller an entry names (etcd's request header), if any.
pub(crate) fn caller_of(req: &V3Request) -> Option<Caller> {
    req.caller.as_ref().map(|c| Caller {
        username: c.username.clone(),
        revision: c.auth_revision,
    })
}

impl Mvcc {
    /// The auth store, for the server's checks of tokens and reads.
    pub fn auth(&self) -> &AuthStore {
        &self.auth
    }

    /// Restores the auth state a reopened keyspace had (persisted beside it).
    pub fn restore_auth(&mut self, state: AuthState) {
        self.auth = AuthStore::from_state(state);
    }

    /// A Range served without the log: etcd checks it against the store as it is.
    pub fn check_range(
        &self,
        caller: Option<&Caller>,
        req: &RangeRequest,
    ) -> Result<(), MvccError> {
        Ok(self
            .auth
            .check(caller, &req.key, &req.range_end, Access::Read)?)
    }

    /// etcd 3.4.45's check of a lease read or renewal at the API layer (LeaseTimeToLive
    /// with keys, LeaseLeases: `Read`; a keep-alive: `Write`): a caller is needed while
    /// auth is on; root may; anyone else must have `access` to every key of the leases.
    pub fn check_lease_access(
        &self,
        caller: Option<&Caller>,
        ids: impl IntoIterator<Item = i64>,
        access: Access,
    ) -> Result<(), MvccError> {
        if !self.auth.is_enabled() {
            return Ok(());
        }
        if caller.is_none() {
            return Err(AuthError::UserEmpty.into());
        }
        if self.auth.check_admin(caller).is_ok() {
            return Ok(());
        }
        for id in ids {
            for key in self.leases.keys_of(id) {
                self.auth.check(caller, key, b"", access)?;
            }
        }
        Ok(())
    }

    /// A read-only Txn served without the log.
    pub fn check_txn(&self, caller: Option<&Caller>, txn: &TxnRequest) -> Result<(), MvccError> {
        self.check_txn_ops(caller, txn)
    }

    /// A watch on `key` (to `range_end`).
    pub fn check_watch(
        &self,
        caller: Option<&Caller>,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<(), AuthError> {
        self.auth.check(caller, key, range_end, Access::Read)
    }

    /// etcd's checks of the entry `req`, before it is applied.
    pub(crate) fn check_auth(&self, req: &V3Request) -> Result<(), MvccError> {
        use v3_request::Request as R;
        let caller = caller_of(req);
        let caller = caller.as_ref();
        let auth = &self.auth;
        let Some(request) = &req.request else {
            return Ok(());
        };
        match request {
            R::Put(p) => self.check_put_auth(caller, p)?,
            R::Range(r) => self.check_range(caller, r)?,
            R::DeleteRange(d) => {
                auth.check(caller, &d.key, &d.range_end, Access::Write)?;
                if d.prev_kv {
                    auth.check(caller, &d.key, &d.range_end, Access::Read)?;
                }
            }
            R::Txn(t) => self.check_txn_ops(caller, t)?,
            R::LeaseRevoke(r) => self.check_lease_keys(caller, r.id)?,
            R::UserGet(g) => {
                if let Err(e) = auth.check_admin(caller) {
                    if caller.is_none_or(|c| c.username != g.name) {
                        return Err(e.into());
                    }
                }
            }
            R::RoleGet(g) => {
                if let Err(e) = auth.check_admin(caller) {
                    if caller.is_none_or(|c| !auth.has_role(&c.username, &g.role)) {
                        return Err(e.into());
                    }
                }
            }
            R::AuthEnable(_)
            | R::AuthDisable(_)
            | R::UserAdd(_)
            | R::UserDelete(_)
            | R::UserChangePassword(_)
            | R::UserGrantRole(_)
            | R::UserRevokeRole(_)
            | R::RoleAdd(_)
            | R::RoleGrantPermission(_)
            | R::RoleRevokePermission(_)
            | R::RoleDelete(_)
            | R::UserList(_)
            | R::RoleList(_) => auth.check_admin(caller)?,
            R::Compaction(_)
            | R::LeaseGrant(_)
            | R::LeaseRenew(_)
            | R::Alarm(_)
            | R::Authenticate(_) => {}
        }
        Ok(())
    }

    /// A Put, alone or in a transaction: its key written, its lease's keys (see
    /// below), and its key read when it asks for the previous value. etcd checked only
    /// the key of a Put in a transaction until 3.4.44 (etcd-io/etcd#21688), so
    /// that its previous value could be read without a read permission.
    fn check_put_auth(&self, caller: Option<&Caller>, p: &PutRequest) -> Result<(), MvccError> {
        self.auth.check(caller, &p.key, b"", Access::Write)?;
        self.check_lease_keys(caller, p.lease)?;
        if p.prev_kv {
            self.auth.check(caller, &p.key, b"", Access::Read)?;
        }
        Ok(())
    }

    /// A lease's keys must all be writable by whoever revokes it or attaches a key to
    /// it (they could not revoke it otherwise).
    fn check_lease_keys(&self, caller: Option<&Caller>, lease: i64) -> Result<(), MvccError> {
        for key in self.leases.keys_of(lease) {
            self.auth.check(caller, key, b"", Access::Write)?;
        }
        Ok(())
    }

    fn check_txn_ops(&self, caller: Option<&Caller>, txn: &TxnRequest) -> Result<(), MvccError> {
        for c in &txn.compare {
            self.auth
                .check(caller, &c.key, &c.range_end, Access::Read)?;
        }
        txn.success
            .iter()
            .chain(&txn.failure)
            .try_for_each(|op| self.check_op(caller, op))
    }

    fn check_op(&self, caller: Option<&Caller>, op: &RequestOp) -> Result<(), MvccError> {
        let auth = &self.auth;
        match &op.request {
            Some(Op::RequestRange(r)) => auth.check(caller, &r.key, &r.range_end, Access::Read)?,
            Some(Op::RequestPut(p)) => self.check_put_auth(caller, p)?,
            Some(Op::RequestDeleteRange(d)) => {
                if d.prev_kv {
                    auth.check(caller, &d.key, &d.range_end, Access::Read)?;
                }
                auth.check(caller, &d.key, &d.range_end, Access::Write)?;
            }
            Some(Op::RequestTxn(t)) => self.check_txn_ops(caller, t)?,
            None => {}
        }
        Ok(())
    }

    /// Applies an Auth service entry; `None` for any other request.
    pub(crate) fn apply_auth(
        &mut self,
        req: &V3Request,
    ) -> Option<Result<v3_response::Response, MvccError>> {
        use v3_request::Request as R;
        use v3_response::Response as A;
        let header = header(self.current);
        let auth = &mut self.auth;
        let answer: Result<A, AuthError> = match req.request.as_ref()? {
            R::AuthEnable(_) => auth
                .enable()
                .map(|()| A::AuthEnable(AuthEnableResponse { header })),
            R::AuthDisable(_) => {
                auth.disable();
                Ok(A::AuthDisable(AuthDisableResponse { header }))
            }
            R::Authenticate(a) => auth.authenticate(&a.name, &a.token, a.now_ns).map(|()| {
                A::Authenticate(AuthenticateResponse {
                    header,
                    token: a.token.clone(),
                })
            }),
            R::UserAdd(u) => {
                let no_password = u.options.is_some_and(|o| o.no_password);
                let hash = (!no_password).then(|| u.hashed_password.clone());
                auth.user_add(&u.name, hash, no_password)
                    .map(|()| A::UserAdd(AuthUserAddResponse { header }))
            }
            R::UserGet(g) => auth
                .user_get(&g.name)
                .map(|roles| A::UserGet(AuthUserGetResponse { header, roles })),
            R::UserList(_) => Ok(A::UserList(AuthUserListResponse {
                header,
                users: auth.user_list(),
            })),
            R::UserDelete(d) => auth
                .user_delete(&d.name)
                .map(|()| A::UserDelete(AuthUserDeleteResponse { header })),
            R::UserChangePassword(c) => auth
                .user_change_password(&c.name, c.hashed_password.clone())
                .map(|()| A::UserChangePassword(AuthUserChangePasswordResponse { header })),
            R::UserGrantRole(g) => auth
                .user_grant_role(&g.user, &g.role)
                .map(|()| A::UserGrantRole(AuthUserGrantRoleResponse { header })),
            R::UserRevokeRole(r) => auth
                .user_revoke_role(&r.name, &r.role)
                .map(|()| A::UserRevokeRole(AuthUserRevokeRoleResponse { header })),
            R::RoleAdd(r) => auth
                .role_add(&r.name)
                .map(|()| A::RoleAdd(AuthRoleAddResponse { header })),
            R::RoleGet(g) => auth.role_get(&g.role).map(|perms| {
                A::RoleGet(AuthRoleGetResponse {
                    header,
                    perm: perms
                        .into_iter()
                        .map(|p| Permission {
                            perm_type: p.kind.number(),
                            key: p.key,
                            range_end: p.range_end,
                        })
                        .collect(),
                })
            }),
            R::RoleList(_) => Ok(A::RoleList(AuthRoleListResponse {
                header,
                roles: auth.role_list(),
            })),
            R::RoleDelete(d) => auth
                .role_delete(&d.role)
                .map(|()| A::RoleDelete(AuthRoleDeleteResponse { header })),
            R::RoleGrantPermission(g) => {
                let perm = g.perm.clone().unwrap_or_default();
                match perm_of(perm.perm_type, perm.key, perm.range_end) {
                    // etcd stores a kind it does not know; Beacon refuses it as the
                    // bad argument it is.
                    None => return Some(Err(MvccError::Auth(AuthError::InvalidAuthMgmt))),
                    Some(perm) => auth.role_grant_permission(&g.name, perm).map(|()| {
                        A::RoleGrantPermission(AuthRoleGrantPermissionResponse { header })
                    }),
                }
            }
            R::RoleRevokePermission(r) => auth
                .role_revoke_permission(&r.role, &r.key, &r.range_end)
                .map(|()| A::RoleRevokePermission(AuthRoleRevokePermissionResponse { header })),
            _ => return None,
        };
        if answer.is_ok() {
            self.auth_changed = true;
        }
        Some(answer.map_err(MvccError::Auth))
    }
}
