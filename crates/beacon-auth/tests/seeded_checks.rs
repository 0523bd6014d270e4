//! A seeded generator over the auth checks: random users, roles and permissions, then
//! random requests. Whatever [`AuthStore::check`] allows, a plain model must allow too:
//! every key of a small universe that the request touches lies in some permission of
//! the right kind held through one of the user's roles. (The model may allow more: the
//! universe is a sample, and a range over it proves nothing about keys between.)

use beacon_auth::{Access, AuthStore, Perm, PermKind, ROOT};
use beacon_testkit::SeededRng;

/// Bytes that sit at the edges of etcd's comparisons: zero, a letter, its successor, 0xff.
const ALPHABET: &[u8] = &[0, b'a', b'b', 0xff];

fn key(rng: &mut SeededRng) -> Vec<u8> {
    let len = rng.below(4) as usize;
    (0..len)
        .map(|_| ALPHABET[rng.below(ALPHABET.len() as u64) as usize])
        .collect()
}

/// A range end: none (one key), `"\0"` (every key from the start on), or a key.
fn range_end(rng: &mut SeededRng) -> Vec<u8> {
    match rng.below(4) as usize {
        0 => Vec::new(),
        1 => vec![0],
        _ => key(rng),
    }
}

/// Every key of up to three bytes over [`ALPHABET`].
fn universe() -> Vec<Vec<u8>> {
    let mut keys = vec![Vec::new()];
    let mut last = vec![Vec::new()];
    for _ in 0..3 {
        let next: Vec<Vec<u8>> = last
            .iter()
            .flat_map(|k: &Vec<u8>| {
                ALPHABET.iter().map(move |b| {
                    let mut k = k.clone();
                    k.push(*b);
                    k
                })
            })
            .collect();
        keys.extend(next.iter().cloned());
        last = next;
    }
    keys
}

/// Whether `k` is in the interval `[key, range_end)` as etcd reads a request or a
/// permission (`range_end` empty: `key` alone; `"\0"`: from `key` on).
fn contains(key: &[u8], range_end: &[u8], k: &[u8]) -> bool {
    match range_end {
        [] => k == key,
        [0] => k >= key,
        end => k >= key && k < end,
    }
}

fn allows(kind: PermKind, access: Access) -> bool {
    matches!(
        (kind, access),
        (PermKind::ReadWrite, _)
            | (PermKind::Read, Access::Read)
            | (PermKind::Write, Access::Write)
    )
}

#[test]
fn nothing_the_model_forbids_is_allowed() {
    let universe = universe();
    let (mut cases, mut allowed) = (0u64, 0u64);
    for seed in 0..1_000u64 {
        let mut rng = SeededRng::new(seed);
        let mut store = AuthStore::default();
        store.user_add(ROOT, None, true).expect("root");
        store.user_grant_role(ROOT, ROOT).expect("root role");
        let users = ["u0", "u1", "u2"];
        let roles = ["r0", "r1", "r2", "r3"];
        for u in users {
            store.user_add(u, Some("h".into()), false).expect("user");
        }
        for r in roles {
            store.role_add(r).expect("role");
            for _ in 0..rng.below(4) as usize {
                let kind =
                    [PermKind::Read, PermKind::Write, PermKind::ReadWrite][rng.below(3) as usize];
                let perm = Perm {
                    kind,
                    key: key(&mut rng),
                    range_end: range_end(&mut rng),
                };
                store.role_grant_permission(r, perm).expect("granted");
            }
        }
        for u in users {
            for _ in 0..rng.below(3) as usize {
                store
                    .user_grant_role(u, roles[rng.below(roles.len() as u64) as usize])
                    .expect("granted");
            }
        }
        // Some revokes and a deleted role, so the checks see changed state too.
        if rng.below(2) as usize == 0 {
            let _ = store.role_delete(roles[rng.below(roles.len() as u64) as usize]);
        }
        store.enable().expect("enabled");
        for _ in 0..200 {
            let user = users[rng.below(users.len() as u64) as usize];
            let caller = store.caller_named(user);
            let (k, end) = (key(&mut rng), range_end(&mut rng));
            let access = if rng.below(2) as usize == 0 {
                Access::Read
            } else {
                Access::Write
            };
            cases += 1;
            if store.check(Some(&caller), &k, &end, access).is_err() {
                continue;
            }
            allowed += 1;
            let state = store.state();
            let held: Vec<&Perm> = state.users[user]
                .roles
                .iter()
                .filter_map(|r| state.roles.get(r))
                .flat_map(|r| &r.perms)
                .filter(|p| allows(p.kind, access))
                .collect();
            for probe in universe.iter().filter(|p| contains(&k, &end, p)) {
                assert!(
                    held.iter().any(|p| contains(&p.key, &p.range_end, probe)),
                    "seed {seed}: {user} allowed {access:?} on {k:?}..{end:?}, \
                     but no permission holds {probe:?}"
                );
            }
        }
    }
    eprintln!("{cases} requests checked, {allowed} allowed, none against the model");
    assert!(allowed > 1_000, "the generator allows too little to test");
}
